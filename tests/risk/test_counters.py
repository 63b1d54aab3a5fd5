"""The counters: Redis and database agree, Redis failing degrades to the database,
racing checkouts cannot all pass, holds are released."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import Counter
from decimal import Decimal

import pytest
import redis
from django.db import connection
from django.utils import timezone

from risk.counters import EPOCH_KEY
from risk.models import RiskEvaluation, RiskRule, Subject
from risk.services import risk_assess
from risk.types import Action
from tests.factories.accounts import UserFactory
from tests.factories.catalog import SkuFactory
from tests.factories.risk import RiskRuleFactory, risk_order
from tests.risk.conftest import (
    DEAD_REDIS,
    T0,
    Shop,
    purge_counters,
    redis_url,
    use_db,
    use_redis,
)

K = RiskRule.Kind
ALLOW, BLOCK = Action.ALLOW, Action.BLOCK


def _mixed_rules(sku):
    RiskRuleFactory(
        kind=K.VELOCITY_ORDERS, subject=Subject.DEVICE, threshold=4, window_seconds=600
    )
    RiskRuleFactory(
        kind=K.VELOCITY_ORDERS, subject=Subject.IP, threshold=6, window_seconds=3600
    )
    RiskRuleFactory(
        kind=K.VELOCITY_AMOUNT,
        subject=Subject.ACCOUNT,
        threshold=120,
        window_seconds=3600,
    )
    RiskRuleFactory(
        kind=K.SKU_LIMIT, subject=Subject.ACCOUNT, threshold=5, window_seconds=86400
    )
    RiskRuleFactory(
        kind=K.DISTINCT_RECHARGE_ACCOUNTS,
        subject=Subject.DEVICE,
        threshold=3,
        window_seconds=3600,
    )
    RiskRuleFactory(
        kind=K.VELOCITY_ORDERS,
        subject=Subject.RECHARGE_ACCOUNT,
        threshold=3,
        window_seconds=1800,
        scope="sku",
        sku=sku,
    )
    RiskRuleFactory(
        kind=K.UNPAID_ORDERS, subject=Subject.DEVICE, threshold=3, window_seconds=None
    )


def _scenario(shop, tag: str) -> list[str]:
    """Forty checkouts from a few devices, IPs, accounts and recharge accounts,
    minutes apart (so windows slide); the subjects are fresh per run."""
    users = [UserFactory(username=f"{tag}-u{i}") for i in range(3)]
    outcomes = []
    for i in range(40):
        action = shop.checkout(
            user=users[i % 3],
            device=f"{tag}-dev{i % 2}",
            ip=f"192.0.2.{(i % 4) + (10 if tag == 'redis' else 100)}",
            recharge_account=f"{tag}-acct{i % 5}",
            quantity=1 + i % 2,
            amount=Decimal("10.00") + i,
            now=T0 + dt.timedelta(minutes=7 * i),
        )
        outcomes.append(str(action))
    return outcomes


@pytest.mark.django_db
def test_redis_and_database_counters_give_the_same_answers(sku, shopper, settings):
    _mixed_rules(sku)
    shop = Shop(sku, shopper)

    use_redis(settings)
    from_redis = _scenario(shop, "redis")
    use_db(settings)
    from_db = _scenario(shop, "db")

    assert from_redis == from_db
    assert Counter(from_redis)[BLOCK] >= 5  # the scenario does reach the limits
    sources = set(RiskEvaluation.objects.values_list("inputs__counters", flat=True))
    assert sources == {"redis+db", "db"}  # unpaid orders always come from the database


@pytest.mark.django_db
def test_redis_outage_falls_back_to_the_database_and_still_blocks(
    shop, settings, caplog
):
    RiskRuleFactory(kind=K.VELOCITY_ORDERS, subject=Subject.DEVICE, threshold=3)
    settings.RISK_COUNTERS_REDIS_URL = DEAD_REDIS

    with caplog.at_level(logging.WARNING, logger="risk.counters"):
        outcomes = [shop.checkout() for _ in range(5)]

    assert outcomes == [ALLOW] * 3 + [BLOCK] * 2
    assert "redis unavailable" in caplog.text
    assert set(RiskEvaluation.objects.values_list("inputs__counters", flat=True)) == {
        "db"
    }


@pytest.mark.django_db
def test_after_an_outage_redis_counts_are_completed_from_the_database(shop, settings):
    RiskRuleFactory(kind=K.VELOCITY_ORDERS, subject=Subject.DEVICE, threshold=3)
    settings.RISK_COUNTERS_REDIS_URL = DEAD_REDIS
    during = [shop.checkout() for _ in range(3)]  # orders Redis never saw

    use_redis(settings, after_outage=True)  # Redis is back
    after, assessment, _order = shop.assess()

    assert (during, after) == ([ALLOW] * 3, BLOCK)
    record = RiskEvaluation.objects.get(pk=assessment.evaluation_id)
    assert record.inputs["counters"] == "redis+db"
    epoch = int(redis.Redis.from_url(redis_url(settings)).get(EPOCH_KEY))
    assert epoch == int(T0.timestamp() * 1000)  # restarted: complete from now on


@pytest.mark.django_db
def test_abandoned_checkout_does_not_count(shop, settings):
    use_redis(settings)
    RiskRuleFactory(kind=K.VELOCITY_ORDERS, subject=Subject.DEVICE, threshold=2)
    from risk.services import risk_checkout_abandon

    kept = risk_assess(shop.signals())
    dropped = risk_assess(shop.signals())
    blocked = risk_assess(shop.signals())
    risk_checkout_abandon(dropped)
    risk_checkout_abandon(dropped)  # twice: harmless
    again = risk_assess(shop.signals())

    assert [a.action for a in (kept, dropped, blocked, again)] == [
        ALLOW,
        ALLOW,
        BLOCK,
        ALLOW,
    ]
    assert blocked.hold == ()  # a block released its own entry at once
    assert len(kept.hold) == 2  # the member and its one set


@pytest.mark.django_db(transaction=True)
def test_twenty_racing_checkouts_from_one_device_let_exactly_five_through(settings):
    assert connection.vendor == "postgresql"
    use_redis(settings)
    sku = SkuFactory(max_per_order=50)
    RiskRuleFactory(kind=K.VELOCITY_ORDERS, subject=Subject.DEVICE, threshold=5)
    users = [UserFactory() for _ in range(20)]
    barrier = threading.Barrier(len(users))
    results: list[str] = []
    lock = threading.Lock()

    def buy(user):
        try:
            barrier.wait()
            outcome = str(risk_assess(Shop(sku, user).signals(ip=None)).action)
        except Exception as exc:  # anything else is a bug the test must show
            outcome = f"error: {exc!r}"
        finally:
            connection.close()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=buy, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert Counter(results) == Counter({"allow": 5, "block": 15})
    purge_counters(redis_url(settings))


@pytest.mark.django_db
def test_unpaid_orders_of_other_subjects_do_not_count(shop, sku, counters):
    RiskRuleFactory(
        kind=K.UNPAID_ORDERS, subject=Subject.IP, threshold=1, window_seconds=None
    )
    stranger = UserFactory()
    risk_order(user=stranger, sku=sku, created_at=T0, ip="192.0.2.99", device="x")

    assert shop.checkout(now=T0) == ALLOW
    assert shop.checkout(now=T0) == BLOCK


@pytest.mark.django_db
def test_tuning_a_threshold_keeps_the_counts_in_redis_a_new_window_does_not(
    shop, settings
):
    """An operator raising a limit in the middle of a flash sale does not send
    every checkout's counts to the database for a whole window; a rule that now
    counts over a longer window than Redis kept must ask the database."""
    use_redis(settings)
    rule = RiskRuleFactory(
        kind=K.VELOCITY_ORDERS, subject=Subject.DEVICE, threshold=3, window_seconds=600
    )
    now = timezone.now()
    aged_since = RiskRule.objects.get(pk=rule.pk).counting_since

    rule.threshold = Decimal(5)
    rule.action = RiskRule.ActionChoice.REVIEW
    rule.save()
    _a, tuned, _o = shop.assess(now=now)
    rule.refresh_from_db()
    assert rule.counting_since == aged_since

    rule.window_seconds = 1200
    rule.save()
    _a, widened, _o = shop.assess(now=now + dt.timedelta(seconds=1))
    rule.refresh_from_db()
    assert rule.counting_since > aged_since

    sources = [
        RiskEvaluation.objects.get(pk=a.evaluation_id).inputs["counters"]
        for a in (tuned, widened)
    ]
    assert sources == ["redis", "redis+db"]
