"""Prometheus metrics, hand-rolled: counters and latency histograms per provider."""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(BUCKETS):
            if value <= bound:
                self.counts[i] += 1
                break
        else:
            self.counts[-1] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out = []
        cumulative = 0
        for bound, count in zip((*BUCKETS, float("inf")), self.counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f'{name}_bucket{{{labels}{"," if labels else ""}le="{le}"}} {cumulative}')
        braces = f"{{{labels}}}" if labels else ""  # no empty label set
        out.append(f"{name}_sum{braces} {self.total}")
        out.append(f"{name}_count{braces} {self.n}")
        return out


class Metrics:
    """Counters (``count``) and histograms (``observe_*``), rendered by ``render``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[tuple[str, str], int] = defaultdict(int)
        self.send_latency: dict[str, Histogram] = defaultdict(Histogram)
        self.api_latency = Histogram()

    def count(self, what: str, provider: str, n: int = 1) -> None:
        with self._lock:
            self.counters[(what, provider)] += n

    def observe_send(self, provider: str, seconds: float) -> None:
        with self._lock:
            self.send_latency[provider].observe(seconds)

    def observe_api(self, seconds: float) -> None:
        with self._lock:
            self.api_latency.observe(seconds)

    def render(self, by_status: dict[tuple[str, str], int], queue_depth: int) -> str:
        lines = [
            "# HELP formosms_messages Messages in the store by provider and status.",
            "# TYPE formosms_messages gauge",
        ]
        lines += [f'formosms_messages{{provider="{p}",status="{s}"}} {n}' for (p, s), n in sorted(by_status.items())]
        lines += [
            "# HELP formosms_queue_depth Messages waiting to be sent.",
            "# TYPE formosms_queue_depth gauge",
        ]
        lines.append(f"formosms_queue_depth {queue_depth}")
        lines += [
            "# HELP formosms_events_total Worker events by kind and provider.",
            "# TYPE formosms_events_total counter",
        ]
        with self._lock:
            lines += [
                f'formosms_events_total{{kind="{w}",provider="{p}"}} {n}' for (w, p), n in sorted(self.counters.items())
            ]
            lines += [
                "# HELP formosms_send_seconds Provider request latency.",
                "# TYPE formosms_send_seconds histogram",
            ]
            for provider, histogram in sorted(self.send_latency.items()):
                lines += histogram.lines("formosms_send_seconds", f'provider="{provider}"')
            lines += [
                "# HELP formosms_api_seconds API request latency.",
                "# TYPE formosms_api_seconds histogram",
            ]
            lines += self.api_latency.lines("formosms_api_seconds", "")
        return "\n".join(lines) + "\n"
