"""Regenerate ``docs/performance.md`` (and its plot) from ``bench/results/*.json``."""

from __future__ import annotations

import itertools
import json
import sys
from typing import Any

from bench.common import RESULTS, ROOT

DOCS = ROOT.parent / "docs"


def load() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(RESULTS.glob("*.json"))}


def _rate(a: list[float], b: list[float]) -> float:
    """Delivered per second between two ``(seconds, delivered)`` samples."""
    return (b[1] - a[1]) / max(b[0] - a[0], 1e-9)


def plot(results: dict[str, dict[str, Any]]) -> str | None:
    series = {k: v["series"] for k, v in results.items() if "series" in v and len(v["series"]) > 1}
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, points in series.items():
        times = [t for t, _ in points]
        rates = [0.0] + [_rate(a, b) for a, b in itertools.pairwise(points)]
        ax.plot(times, rates, label=name.replace("_", " "))
    ax.axhline(2000, color="grey", linestyle="--", linewidth=1, label="target 2,000/s")
    ax.set_xlabel("seconds")
    ax.set_ylabel("messages delivered per second")
    ax.set_title("Gateway end to end: API → provider → callback → stored")
    ax.legend()
    fig.tight_layout()
    DOCS.mkdir(exist_ok=True)
    path = DOCS / "throughput.png"
    fig.savefig(path, dpi=110)
    return path.name


def _thirds(results: dict[str, dict[str, Any]]) -> str:
    """Delivered/s over the first and the last third of each gateway run's load window."""
    out = []
    for key in sorted(k for k in results if k.startswith("gateway_")):
        g = results[key]
        points = [p for p in g.get("series", []) if p[0] <= g["seconds"]]
        if len(points) < 4:
            continue
        third = len(points) // 3
        first, last = _rate(points[0], points[third]), _rate(points[-third - 1], points[-1])
        out.append(f"{key.replace('_', ' ')} {first:,.0f} → {last:,.0f}")
    return "; ".join(out) or "no series"


def main() -> int:
    results = load()
    lines = [
        "# Performance",
        "",
        "Measured by `make bench` on the project's 2-core machine. Absolute times drift by about",
        "±25 % there, so each benchmark compares inside one run and the ratios are what count.",
        "Raw figures: `bench/results/*.json`. Regenerate this page with `make bench`.",
        "",
        "| benchmark | figure | target | met |",
        "|---|---|---|---|",
    ]

    def row(name: str, figure: str, target: str, ok: bool | None) -> None:
        met = "—" if ok is None else "yes" if ok else "no"
        lines.append(f"| {name} | {figure} | {target} | {met} |")

    campaign = results.get("campaign")
    for r in campaign["rows"] if campaign else []:
        if r["vs_limit"] is not None:
            figure = f"{r['formosms_seconds']} s = {r['vs_limit']}× the limit's {r['limit_seconds']} s"
            row(f"campaign {r['provider']} 10,000", figure, "≤ 1.10×", r["vs_limit"] <= 1.1)
        if r["speedup_vs_hand_loop"] is not None:
            hand = r["hand_loop_seconds_extrapolated"]
            figure = f"{r['speedup_vs_hand_loop']}× ({r['formosms_seconds']} s vs ≈ {hand} s)"
            row(f"campaign {r['provider']} vs hand loop", figure, "≥ 10×", r["speedup_vs_hand_loop"] >= 10)
    overhead = results.get("client_overhead")
    if overhead:
        figure = f"{overhead['formosms_rps']} vs {overhead['aiohttp_rps']} req/s = {overhead['ratio']}"
        row("AsyncClient vs bare aiohttp", figure, "≥ 0.70", overhead["ratio"] >= 0.7)
    gateways = sorted(k for k in results if k.startswith("gateway_"))
    for key in gateways:
        g = results.get(key)
        if g:
            rate = g["sustained_delivered_per_s"]
            # overload runs (offered twice the target) show behaviour, not the target figure
            overload = key.endswith("_overload")
            row(
                f"{key.replace('_', ' ')} ({g.get('layout', 'one process')})",
                f"{rate} delivered/s over {g['seconds']:.0f} s (offered {g.get('offered_rate', 2000):,.0f}/s)",
                "(overload)" if overload else "≥ 2,000/s",
                None if overload else rate >= 2000,
            )
            row(
                f"{key.replace('_', ' ')} API p99 at 500 req/s",
                f"{g['api_p99_ms']} ms",
                "(overload)" if overload else "< 50 ms",
                None if overload else g["api_p99_ms"] < 50,
            )
    memory = results.get("memory")
    if memory:
        peak = max(memory["campaign_peak_rss_mb"], memory["gateway_peak_rss_mb"])
        figure = (
            f"{memory['recipients_per_s']} recipients/s; peak RSS campaign "
            f"{memory['campaign_peak_rss_mb']} MB, gateway {memory['gateway_peak_rss_mb']} MB"
        )
        row(
            "1M-row CSV campaign",
            figure,
            "≥ 20,000/s, < 200 MB",
            memory["recipients_per_s"] >= 20000 and peak < 200,
        )
    for key in gateways:
        hot = (results.get(key) or {}).get("profile_inclusive") or []
        if hot:
            lines += ["", f"Where the time goes in `{key}` (py-spy samples with it on the stack):", ""]
            lines += [f"- {share:.0%} `{name}`" for name, share in hot[:10] if "." in name]
    lines += [
        "",
        "## Reading the gateway figures",
        "",
        "- The load generator offers 2,500 messages/s (4,000 in the overload rows), so a run shows",
        "  what the gateway can take rather than the offered rate. The sandbox calls back once per",
        "  message (as EVERY8D does), with up to 256 callbacks in flight (its default is 32),",
        "  and the gateway acks a callback only once it is committed: throughput is callbacks",
        "  in flight divided by the time to ack one.",
        "- The machine's speed differs between sessions, not only between runs: the same",
        "  commit measured 150 µs of store CPU per message (`bench.store_ops`, SQLite) in one",
        "  session and 87 µs in the next, and one `serve` process went from 1,600–2,270 to",
        "  2,360–2,480 delivered/s. Compare figures from one session only.",
        "- On SQLite, submissions and callbacks commit together (one turn of the single writer,",
        "  one fsync). `serve --no-workers` plus one `formosms worker` spreads the gateway over",
        "  both cores; the two processes share the writer through a lock file. Both layouts",
        "  delivered what was offered (2,500/s). The overload rows offer 4,000/s, twice the",
        "  target: one process then delivered 2,710/s and the two processes 3,490/s while",
        "  taking every submission.",
        "- API latency is measured after the load, at 500 single-message requests a second",
        "  (each one a request, a send and a callback). Plain submissions with a known key skip",
        "  FastAPI's machinery; the rest of the p99 is the group commit and queueing in a busy",
        "  process.",
        "- On PostgreSQL the server, the sandbox and three gateway processes share the two",
        "  cores (1.8 of them busy). A submission with its events, a claim, and marking rows",
        "  `sending` are each one statement that commits by itself, and pooled connections are",
        "  pinged only after sitting idle: every BEGIN, COMMIT and ping had been a round trip",
        "  that waited for a busy machine to schedule the server. The server spends about",
        "  0.22 ms of CPU per message (0.34 ms before those changes, same session).",
        "- PostgreSQL overloaded (offered 4,000/s) delivered 1,960/s while it took the",
        "  submissions, then drained the backlog at 4,300–4,600/s once they stopped (see the",
        "  plot). Accepting 4,000 submissions a second fills the `serve` process's core, the",
        "  callbacks it also answers wait longer for their ack, and with 256 callbacks in",
        "  flight fewer complete each second. Offered 4,000/s for 30 s in one session, the last",
        "  landed commit delivered 1,853/s and this one 2,393/s.",
        "- Over a run (see the plot), first and last third of the load in delivered/s:",
        "  " + _thirds(results) + ": level at the offered rate means the gateway kept up the whole run.",
        "- The store's own cost per message, step by step (`bench.store_ops`):",
    ]
    stores = [k for k in ("store_ops_sqlite", "store_ops_postgres") if k in results]
    for key in stores:
        ops = results[key]["us_per_message"]
        parts = ", ".join(f"{step} {us:.0f}" for step, us in ops.items())
        total, wall = results[key]["total"], results[key].get("total_wall", 0)
        lines.append(f"- `{key}` (one thread, no HTTP): {total:.0f} µs of CPU and {wall:.0f} µs of wall time per")
        lines.append(f"  message ({parts}, CPU).")
    image = plot(results)
    if image:
        lines += ["", f"![throughput over time]({image})"]
    lines += [
        "",
        "## Commands",
        "",
        "- `python -m bench.campaign` — 10,000 recipients per provider, 30 ms latency, documented limits",
        "- `python -m bench.client_overhead` — AsyncClient vs a bare aiohttp loop, same server, same run",
        "- `python -m bench.gateway_e2e [--workers N] [--postgres URL]` — REST API to delivered, then API",
        "  latency; the sandbox makes up to 256 callbacks at once (`--callback-workers`)",
        "- `python -m bench.memory` — 1,000,000-row CSV through `formosms campaign send`",
        "- `python -m bench.store_ops [--postgres URL]` — the store's CPU per message, step by step",
        "",
    ]
    DOCS.mkdir(exist_ok=True)
    (DOCS / "performance.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
