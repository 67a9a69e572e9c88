"""Routing: destination classes, routes, features, priority and weight, breakers, cost."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal

import pytest

from formosms.gateway.config import ProviderSettings, RouteSettings
from formosms.gateway.routing import Candidate, CircuitBreaker, Router, destination, needed_features
from formosms.model import Encoding, Estimate, Feature
from formosms.providers.base import Provider
from tests.gateway.conftest import candidate, fake_candidate

TW, CN, HK = "+886912345678", "+8613512345678", "+85291234567"


class FakeE8D(Provider):
    """An EVERY8D-like provider (MMS, lists of numbers) without its module."""

    name = "fake-every8d"
    features = frozenset({Feature.SEND, Feature.MMS, Feature.INTERNATIONAL, Feature.STATUS_QUERY})
    max_recipients = 1000
    default_base_url = "https://e8d.invalid"

    def estimate(self, recipients: Sequence[str], text: str) -> Estimate:
        return Estimate(self.name, Encoding.GSM7, 1, Decimal("2.5") * len(recipients), len(recipients))


def providers() -> list[Candidate]:
    return [
        candidate("tw", "twsms://u:p@", priority=1),
        candidate("sg", "smsget://u:p@", priority=2),
        fake_candidate("e8d", FakeE8D("u", "p"), priority=3),
    ]


def test_destination_classes() -> None:
    assert destination(TW) == "TW"
    assert destination(CN) == "CN"
    assert destination(HK) == "INTL"
    assert destination("+14155550100") == "INTL"


def test_needed_features() -> None:
    assert needed_features({}, TW) == set()
    assert needed_features({"mms": {"data": "x"}, "flash": True, "wap_url": ""}, TW) == {
        Feature.MMS,
        Feature.FLASH,
    }
    assert needed_features({"two_way": True}, CN) == {Feature.TWO_WAY, Feature.INTERNATIONAL}


def test_priority_order_without_routes() -> None:
    router = Router(providers())
    assert router.order(TW, "hi", {}) == ["tw", "sg", "e8d"]


def test_routes_by_pattern_and_class() -> None:
    routes = [
        RouteSettings(to="+8869123*", providers=["sg"]),
        RouteSettings(to="CN", providers=["e8d", "tw"]),
        RouteSettings(to="INTL", providers=["e8d"]),
    ]
    router = Router(providers(), routes)
    assert router.order(TW, "hi", {}) == ["sg"]  # first match wins
    assert router.order("+886987654321", "hi", {}) == ["tw", "sg", "e8d"]  # no match: everyone
    assert router.order(CN, "hi", {}) == ["e8d", "tw"]
    assert router.order(HK, "hi", {}) == ["e8d"]


def test_routes_by_feature() -> None:
    routes = [RouteSettings(feature="two_way", providers=["sg"]), RouteSettings(to="*", providers=["tw"])]
    router = Router(providers(), routes)
    assert router.order(TW, "hi", {"two_way": True}) == ["sg"]
    assert router.order(TW, "hi", {}) == ["tw"]


def test_a_route_with_no_providers_means_all_by_priority() -> None:
    router = Router(providers(), [RouteSettings(to="CN", cheapest=True)])
    assert router.order(CN, "hello", {}) == ["sg", "e8d", "tw"]  # 2 < 2.5 < 3 points


def test_cheapest_orders_by_estimate() -> None:
    router = Router(providers(), [RouteSettings(to="*", providers=["tw", "e8d", "sg"], cheapest=True)])
    assert router.order(CN, "hello", {}) == ["sg", "e8d", "tw"]
    # a tie keeps the route's order (TW and SMS-Get both 1 point in Taiwan; e8d 2.5)
    assert router.order(TW, "hello", {}) == ["tw", "sg", "e8d"]


def test_features_exclude_providers() -> None:
    router = Router(providers())
    assert router.order(TW, "hi", {"mms": {"data": "eA=="}}) == ["e8d"]  # MMS only EVERY8D
    assert router.order(TW, "hi", {"two_way": True}) == ["sg"]
    assert router.order(TW, "hi", {"flash": True}) == []
    assert router.order(TW, "hi", {"mms": {"data": "eA=="}}, requested="tw") == []


def test_requested_provider() -> None:
    router = Router(providers())
    assert router.order(TW, "hi", {}, requested="sg") == ["sg"]
    assert router.order(TW, "hi", {}, requested="nope") == []


def test_tried_providers_are_excluded() -> None:
    router = Router(providers())
    assert router.order(TW, "hi", {}, exclude=["tw"]) == ["sg", "e8d"]
    assert router.order(TW, "hi", {}, exclude=["tw", "sg", "e8d"]) == []


def test_weights_within_a_priority() -> None:
    heavy = candidate("heavy", "twsms://u:p@", priority=1, weight=9.0)
    light = candidate("light", "smsget://u:p@", priority=1, weight=1.0)
    backup = candidate("backup", "twsms://u:q@", priority=5, weight=100.0)
    router = Router([light, heavy, backup], rng=random.Random(7))
    firsts = Counter(router.order(TW, "hi", {})[0] for _ in range(2000))
    assert 0.85 < firsts["heavy"] / 2000 < 0.95
    assert all(router.order(TW, "hi", {})[-1] == "backup" for _ in range(50))  # priority beats weight


def test_open_breaker_is_excluded_then_half_open() -> None:
    cands = providers()
    router = Router(cands)
    breaker = router.providers["tw"].breaker
    for _ in range(breaker.threshold - 1):
        breaker.failure()
    assert breaker.state == "closed"
    breaker.failure()
    assert breaker.state == "open" and not breaker.allows()
    assert router.order(TW, "hi", {}) == ["sg", "e8d"]
    assert router.order(TW, "hi", {}, include_open=True) == ["tw", "sg", "e8d"]
    assert 0 < breaker.remaining() <= breaker.cooldown

    assert breaker.opened_at is not None
    breaker.opened_at -= breaker.cooldown  # the cooldown has passed
    assert breaker.state == "half-open" and breaker.remaining() == 0
    assert router.order(TW, "hi", {}) == ["tw", "sg", "e8d"]
    breaker.failure()  # the probe failed: open again at once
    assert breaker.state == "open"
    breaker.opened_at -= breaker.cooldown
    breaker.success()  # the probe worked: closed
    assert breaker.state == "closed" and breaker.failures == 0


def test_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(threshold=3)
    breaker.failure()
    breaker.failure()
    breaker.success()
    breaker.failure()
    breaker.failure()
    assert breaker.state == "closed"


@pytest.mark.parametrize("weight", [0.0, -1.0])
def test_zero_weight_does_not_crash(weight: float) -> None:
    odd = Candidate(ProviderSettings("odd", "twsms://u:p@", weight=weight), FakeE8D("u", "p"), CircuitBreaker())
    router = Router([odd, *providers()])
    assert "odd" in router.order(TW, "hi", {})
