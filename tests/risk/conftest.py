"""Risk fixtures: a shop to check out in, and the two counter paths."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal

import pytest
import redis

from risk import counters as risk_counters
from risk.counters import EPOCH_KEY, KEY_PREFIX
from risk.services import risk_assess, risk_checkout_abandon, risk_checkout_confirm
from risk.types import Action, Signals, Stage
from tests.factories.accounts import UserFactory
from tests.factories.catalog import SkuFactory
from tests.factories.risk import risk_order

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
DEAD_REDIS = "redis://127.0.0.1:6390/0"  # nothing listens there


def redis_url(settings) -> str:
    return settings.REDIS_URL or "redis://127.0.0.1:6379/15"


def purge_counters(url: str) -> None:
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(KEY_PREFIX + "*"))
    if keys:
        client.delete(*keys)


def use_redis(settings, *, after_outage: bool = False) -> None:
    """Redis counters, complete since long ago (a shop that has run a while);
    `after_outage`: except that this process lost Redis meanwhile."""
    url = redis_url(settings)
    settings.RISK_COUNTERS_REDIS_URL = url
    purge_counters(url)
    redis.Redis.from_url(url).set(EPOCH_KEY, 0)
    # ...and this process has not lost Redis since (an outage test may have
    # left the flag that restarts the epoch on the next call).
    if not after_outage:
        risk_counters._Redis.gap = False


def use_db(settings) -> None:
    settings.RISK_COUNTERS_REDIS_URL = ""


@pytest.fixture(params=["redis", "db"])
def counters(request, settings):
    """Each test using it runs once per counter path."""
    if request.param == "redis":
        use_redis(settings)
    else:
        use_db(settings)
    yield request.param
    purge_counters(redis_url(settings))


class Shop:
    """Checkouts as the storefront makes them: assess, then create the order
    (allow, review) and confirm, or abandon."""

    def __init__(self, sku, user):
        self.sku = sku
        self.user = user

    def signals(self, **kwargs) -> Signals:
        user = kwargs.pop("user", self.user)
        sku = kwargs.pop("sku", self.sku)
        base = Signals(
            stage=Stage.CHECKOUT,
            now=T0,
            ip="198.51.100.7",
            device="device-aaaaaaaaaaaaaaaaa",
            user_id=user.pk,
            account_created_at=T0 - dt.timedelta(days=400),
            email=user.email,
            sku_id=sku.pk,
            platform_id=sku.product.platform_id,
            quantity=1,
            amount=Decimal("25.00"),
        )
        return replace(base, **kwargs)

    def checkout(self, *, captcha_passed: bool = False, **kwargs) -> Action:
        return self.assess(captcha_passed=captcha_passed, **kwargs)[0]

    def assess(self, *, captcha_passed: bool = False, **kwargs):
        user = kwargs.get("user", self.user)
        sku = kwargs.get("sku", self.sku)
        signals = self.signals(**kwargs)
        assessment = risk_assess(signals, captcha_passed=captcha_passed)
        order = None
        if assessment.action in (Action.ALLOW, Action.REVIEW):
            order = risk_order(
                user=user,
                sku=sku,
                created_at=signals.now,
                ip=signals.ip,
                device=signals.device,
                recharge_account=signals.recharge_account,
                quantity=signals.quantity,
                amount=signals.amount,
            )
            risk_checkout_confirm(assessment, order_id=order.pk)
        else:
            risk_checkout_abandon(assessment)
        return assessment.action, assessment, order


@pytest.fixture
def sku(db):
    return SkuFactory(max_per_order=50)


@pytest.fixture
def shopper(db):
    return UserFactory(username="shopper", email="shopper@example.com")


@pytest.fixture
def shop(sku, shopper):
    return Shop(sku, shopper)
