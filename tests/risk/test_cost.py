"""What the engine's cost rests on (issue 7): each rule's count worked out once
per checkout, one packed Redis call, one SQL statement, and the counts those
cheaper shapes give still the same on both counter paths."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from risk import counters as risk_counters
from risk import rules as risk_rules
from risk.models import RiskEvaluation, RiskRule, Subject
from risk.services import risk_assess
from tests.factories.accounts import UserFactory
from tests.factories.risk import RiskRuleFactory
from tests.risk.conftest import T0, Shop, redis_url, use_db, use_redis

K = RiskRule.Kind
HIGH = Decimal(10_000)  # thresholds no scenario reaches: every checkout makes its order


def _every_counting_kind(sku) -> int:
    """Rules of every counting kind, several sharing one subject's set with
    different windows and metrics, and one that counts nothing (the order's
    quantity); returns how many rules count something."""
    specs = [
        (K.VELOCITY_ORDERS, Subject.DEVICE, 600),
        (K.VELOCITY_ORDERS, Subject.DEVICE, 3600),
        (K.VELOCITY_AMOUNT, Subject.DEVICE, 1200),
        (K.VELOCITY_AMOUNT, Subject.DEVICE, 3600),
        (K.DISTINCT_RECHARGE_ACCOUNTS, Subject.DEVICE, 1800),
        (K.DISTINCT_RECHARGE_ACCOUNTS, Subject.DEVICE, 3600),
        (K.VELOCITY_ORDERS, Subject.ACCOUNT, 3600),
        (K.VELOCITY_AMOUNT, Subject.ACCOUNT, 86400),
        (K.VELOCITY_AMOUNT, Subject.IP, 86400),
        (K.VELOCITY_ORDERS, Subject.RECHARGE_ACCOUNT, 86400),
        (K.SKU_LIMIT, Subject.ACCOUNT, 900),
        (K.SKU_LIMIT, Subject.ACCOUNT, 7200),
        (K.SKU_LIMIT, Subject.ACCOUNT, None),
        (K.UNPAID_ORDERS, Subject.ACCOUNT, None),
    ]
    for kind, subject, window in specs:
        RiskRuleFactory(
            kind=kind, subject=subject, window_seconds=window, threshold=HIGH
        )
    RiskRuleFactory(kind=K.ORDER_QUANTITY, window_seconds=None, threshold=HIGH)
    return len(specs)


def _counts_seen(shop, tag: str) -> list[list[tuple[str, str, str, Decimal]]]:
    """Thirty checkouts minutes apart from a few subjects; what the rules saw
    (metric, subject, window, value) at each. Subjects are fresh per tag."""
    users = [UserFactory(username=f"{tag}-u{i}") for i in range(2)]
    seen = []
    for i in range(30):
        _action, assessment, _order = shop.assess(
            user=users[i % 2],
            device=f"{tag}-dev{i % 3}",
            ip=f"192.0.2.{(i % 2) + (10 if tag == 'redis' else 100)}",
            recharge_account=f"{tag}-acct{i % 4}" if i % 5 else "",
            quantity=1 + i % 3,
            amount=Decimal("10.50") + i,
            now=T0 + dt.timedelta(minutes=5 * i),
        )
        record = RiskEvaluation.objects.get(pk=assessment.evaluation_id)
        seen.append(
            sorted(
                (c["metric"], c["subject"], str(c["window"]), Decimal(c["value"]))
                for c in record.inputs["counts"]
            )
        )
    return seen


@pytest.mark.django_db
def test_redis_sums_and_distinct_counts_sharing_a_set_agree_with_the_database(
    sku, shopper, settings
):
    _every_counting_kind(sku)
    shop = Shop(sku, shopper)

    use_redis(settings)
    from_redis = _counts_seen(shop, "redis")
    use_db(settings)
    from_db = _counts_seen(shop, "db")

    assert from_redis == from_db
    # The scenario does count something in every window (not all ones).
    assert max(v for *_k, v in from_redis[-1]) > 3


@pytest.mark.django_db
def test_risk_assess_works_out_each_rules_count_once(shop, sku, settings, monkeypatch):
    use_redis(settings)
    counting_rules = _every_counting_kind(sku)
    calls = []
    original = risk_rules.rule_query

    def counting(rule, signals):
        calls.append(rule.id)
        return original(rule, signals)

    monkeypatch.setattr(risk_rules, "rule_query", counting)

    shop.checkout(recharge_account="acct-1")

    # Once per rule that counts; never for the one that does not.
    assert len(calls) == len(set(calls)) == counting_rules


@pytest.mark.django_db
def test_the_counters_script_gets_five_arguments_however_many_counts(
    shop, sku, settings, monkeypatch
):
    use_redis(settings)
    _every_counting_kind(sku)
    shop.checkout(recharge_account="acct-1")  # the client and its script exist
    client, script = risk_counters._Redis.clients[redis_url(settings)]
    sent = []

    def spy(*, keys, args):
        sent.append((keys, args))
        return script(keys=keys, args=args)

    monkeypatch.setitem(
        risk_counters._Redis.clients, redis_url(settings), (client, spy)
    )

    shop.checkout(recharge_account="acct-1")

    ((keys, args),) = sent
    assert len(args) == 5
    assert len(keys) == 6  # the epoch, device, account, IP, recharge account, SKU


@pytest.mark.django_db
def test_database_counts_take_one_statement_and_name_the_account_once(
    shop, sku, settings
):
    _every_counting_kind(sku)

    use_db(settings)
    with CaptureQueriesContext(connection) as from_db:
        risk_assess(shop.signals(recharge_account="acct-1"))
    use_redis(settings)
    with CaptureQueriesContext(connection) as with_redis:
        risk_assess(shop.signals(recharge_account="acct-1"))

    selects = [q["sql"] for q in from_db.captured_queries if "orders_order" in q["sql"]]
    assert len(selects) == 1  # both groups (order subjects, recharge account)
    # With a lifetime count in the group, the times are the FILTERs' alone (an
    # OR of them in the WHERE would keep nearly every row, and cost planning).
    assert "OR o.created_at" not in selects[0]
    (lifetime,) = [
        q["sql"] for q in with_redis.captured_queries if "orders_order" in q["sql"]
    ]
    # Only the account's lifetime and unpaid counts: its id only in the WHERE.
    assert lifetime.count("o.user_id") == 1
