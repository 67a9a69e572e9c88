"""Which provider sends which message: routes, features, cost, health.

The order for a message: the first matching route's providers (or every provider by
priority, weighted within a priority), minus those that lack a needed feature, refused
it definitively before, or have an open circuit; ``cheapest`` routes sort by estimate.
"""

from __future__ import annotations

import fnmatch
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from formosms.errors import FormosmsError
from formosms.gateway.config import ProviderSettings, RouteSettings
from formosms.model import Feature
from formosms.providers.base import Provider

#: message option -> the feature a provider needs to carry it
OPTION_FEATURES = {
    "mms": Feature.MMS,
    "flash": Feature.FLASH,
    "wap_url": Feature.WAP_PUSH,
    "two_way": Feature.TWO_WAY,
    "reply_url": Feature.TWO_WAY,
}


def destination(e164: str) -> str:
    """``TW``, ``CN`` or ``INTL``: the classes routes match besides patterns."""
    if e164.startswith("+886"):
        return "TW"
    if e164.startswith("+86"):
        return "CN"
    return "INTL"


def needed_features(options: dict[str, object], recipient: str) -> set[Feature]:
    needed = {OPTION_FEATURES[k] for k, v in options.items() if k in OPTION_FEATURES and v}
    if destination(recipient) != "TW":
        needed.add(Feature.INTERNATIONAL)
    return needed


class CircuitBreaker:
    """Opens after ``threshold`` transient failures in a row; half-opens after ``cooldown``."""

    def __init__(self, threshold: int = 5, cooldown: float = 30.0):
        self.threshold = threshold
        self.cooldown = cooldown
        self.failures = 0
        self.opened_at: float | None = None

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if time.monotonic() - self.opened_at >= self.cooldown else "open"

    def allows(self) -> bool:
        return self.state != "open"

    def remaining(self) -> float:
        """Seconds until an open circuit half-opens (0 when it is not open)."""
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.cooldown - (time.monotonic() - self.opened_at))

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold or self.state == "half-open":
            self.opened_at = time.monotonic()


@dataclass
class Candidate:
    settings: ProviderSettings
    provider: Provider
    breaker: CircuitBreaker


class Router:
    def __init__(
        self,
        providers: Sequence[Candidate],
        routes: Sequence[RouteSettings] = (),
        rng: random.Random | None = None,
    ):
        self.providers = {c.settings.name: c for c in providers}
        self.routes = list(routes)
        self.random = rng or random.Random()

    def order(
        self,
        recipient: str,
        text: str,
        options: dict[str, object],
        *,
        requested: str | None = None,
        exclude: Sequence[str] = (),
        include_open: bool = False,
    ) -> list[str]:
        """Eligible provider names for one message, best first.

        ``include_open`` keeps providers whose circuit is open now: a message with no
        eligible provider but those waits for one to half-open instead of failing.
        """
        needed = needed_features(options, recipient)
        names = [requested] if requested else self._route_names(recipient, needed)
        eligible = [
            n
            for n in names
            if n in self.providers
            and n not in exclude
            and needed <= self.providers[n].provider.features
            and (include_open or self.providers[n].breaker.allows())
        ]
        route = self._route(recipient, needed)
        if route is not None and route.cheapest:
            eligible.sort(key=lambda n: self._cost(n, recipient, text))
        return eligible

    def _route(self, recipient: str, needed: set[Feature]) -> RouteSettings | None:
        for route in self.routes:
            pattern = route.to or "*"
            to_ok = pattern == destination(recipient) or fnmatch.fnmatchcase(recipient, pattern)
            feature_ok = route.feature is None or route.feature in {f.value for f in needed}
            if to_ok and feature_ok:
                return route
        return None

    def _route_names(self, recipient: str, needed: set[Feature]) -> list[str]:
        route = self._route(recipient, needed)
        if route is not None and route.providers:
            return list(route.providers)
        by_priority: dict[int, list[Candidate]] = {}
        for candidate in self.providers.values():
            by_priority.setdefault(candidate.settings.priority, []).append(candidate)
        names: list[str] = []
        for priority in sorted(by_priority):
            group = by_priority[priority]
            # weighted shuffle within a priority (Efraimidis–Spirakis keys)
            keyed = sorted(group, key=lambda c: -(self.random.random() ** (1.0 / max(c.settings.weight, 1e-9))))
            names += [c.settings.name for c in keyed]
        return names

    def _cost(self, name: str, recipient: str, text: str) -> float:
        try:
            return float(self.providers[name].provider.estimate([recipient], text).points)
        except (FormosmsError, NotImplementedError):
            return float("inf")
