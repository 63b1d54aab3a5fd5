"""risk_assess through both counter paths: each rule kind at its boundary, with real orders."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from orders.models import Order
from risk.models import RiskEvaluation, RiskRule, Subject
from risk.types import Action
from tests.factories.accounts import UserFactory
from tests.factories.catalog import SkuFactory
from tests.factories.risk import RiskListEntryFactory, RiskRuleFactory, risk_order
from tests.risk.conftest import T0

K = RiskRule.Kind
BLOCK = Action.BLOCK
ALLOW = Action.ALLOW
pytestmark = pytest.mark.django_db


def test_velocity_orders_per_device_passes_the_fifth_and_stops_the_sixth(
    shop, counters
):
    RiskRuleFactory(kind=K.VELOCITY_ORDERS, subject=Subject.DEVICE, threshold=5)

    outcomes = [shop.checkout(now=T0 + dt.timedelta(minutes=i)) for i in range(7)]

    assert outcomes == [ALLOW] * 5 + [BLOCK, BLOCK]
    assert Order.objects.count() == 5


def test_velocity_orders_window_slides(shop, counters):
    RiskRuleFactory(
        kind=K.VELOCITY_ORDERS, subject=Subject.DEVICE, threshold=2, window_seconds=3600
    )
    shop.checkout(now=T0)
    shop.checkout(now=T0 + dt.timedelta(minutes=30))

    blocked = shop.checkout(now=T0 + dt.timedelta(minutes=59))
    first_left = shop.checkout(now=T0 + dt.timedelta(minutes=60))
    second_still_in = shop.checkout(now=T0 + dt.timedelta(minutes=61))

    assert (blocked, first_left, second_still_in) == (BLOCK, ALLOW, BLOCK)


def test_velocity_amount_per_ip(shop, counters):
    RiskRuleFactory(
        kind=K.VELOCITY_AMOUNT, subject=Subject.IP, threshold=Decimal("100")
    )

    outcomes = [shop.checkout(amount=Decimal("25.00")) for _ in range(4)]
    over = shop.checkout(amount=Decimal("0.01"))
    other_ip = shop.checkout(amount=Decimal("25.00"), ip="198.51.100.8")

    assert outcomes == [ALLOW] * 4
    assert (over, other_ip) == (BLOCK, ALLOW)


def test_velocity_per_recharge_account_counts_across_accounts(shop, counters):
    RiskRuleFactory(
        kind=K.VELOCITY_ORDERS, subject=Subject.RECHARGE_ACCOUNT, threshold=2
    )
    others = [UserFactory() for _ in range(3)]

    outcomes = [
        shop.checkout(user=u, device=f"dev-{u.pk}", ip=None, recharge_account=ra)
        for u, ra in zip(others, ["a@qq.com", "A@QQ.com", " a@qq.com"], strict=True)
    ]

    assert outcomes == [ALLOW, ALLOW, BLOCK]


def test_velocity_orders_per_account(shop, counters):
    RiskRuleFactory(kind=K.VELOCITY_ORDERS, subject=Subject.ACCOUNT, threshold=1)

    first = shop.checkout(device="d1", ip="192.0.2.1")
    second = shop.checkout(device="d2", ip="192.0.2.2")

    assert (first, second) == (ALLOW, BLOCK)


def test_sku_limit_per_day_counts_units_of_that_sku_only(shop, sku, counters):
    RiskRuleFactory(
        kind=K.SKU_LIMIT, subject=Subject.ACCOUNT, threshold=3, window_seconds=86400
    )
    other_sku = SkuFactory(max_per_order=50)

    two = shop.checkout(quantity=2)
    other = shop.checkout(quantity=5, sku=other_sku)
    third = shop.checkout(quantity=1)
    fourth = shop.checkout(quantity=1)
    next_day = shop.checkout(quantity=1, now=T0 + dt.timedelta(days=1))

    assert (two, other, third, fourth, next_day) == (ALLOW, BLOCK, ALLOW, BLOCK, ALLOW)


def test_sku_limit_lifetime_gives_back_cancelled_orders(shop, sku, shopper, counters):
    RiskRuleFactory(
        kind=K.SKU_LIMIT, subject=Subject.ACCOUNT, threshold=2, window_seconds=None
    )
    long_ago = T0 - dt.timedelta(days=700)
    risk_order(
        user=shopper, sku=sku, created_at=long_ago, status=Order.Status.DELIVERED
    )
    risk_order(
        user=shopper, sku=sku, created_at=long_ago, status=Order.Status.CANCELLED
    )

    second = shop.checkout()
    third = shop.checkout()

    assert (second, third) == (ALLOW, BLOCK)


def test_order_quantity(shop, counters):
    RiskRuleFactory(
        kind=K.ORDER_QUANTITY, subject="", threshold=10, window_seconds=None
    )

    assert shop.checkout(quantity=10) == ALLOW
    assert shop.checkout(quantity=11) == BLOCK


def test_new_account_limit_counts_everything_the_account_bought(shop, counters):
    RiskRuleFactory(
        kind=K.NEW_ACCOUNT, subject="", threshold=Decimal(50), window_seconds=86400
    )
    young = T0 - dt.timedelta(hours=2)

    first = shop.checkout(account_created_at=young, amount=Decimal("25.00"))
    up_to_limit = shop.checkout(account_created_at=young, amount=Decimal("25.00"))
    over = shop.checkout(account_created_at=young, amount=Decimal("0.01"))
    old = shop.checkout(
        account_created_at=T0 - dt.timedelta(days=2), amount=Decimal("500")
    )

    assert (first, up_to_limit, over, old) == (ALLOW, ALLOW, BLOCK, ALLOW)


def test_distinct_recharge_accounts_per_account(shop, counters):
    RiskRuleFactory(
        kind=K.DISTINCT_RECHARGE_ACCOUNTS, subject=Subject.ACCOUNT, threshold=3
    )

    outcomes = [
        shop.checkout(recharge_account=ra) for ra in ["111111", "222222", "333333"]
    ]
    fourth = shop.checkout(recharge_account="444444")
    repeat = shop.checkout(recharge_account="222222")
    card_code = shop.checkout(recharge_account="")

    assert outcomes == [ALLOW] * 3
    assert (fourth, repeat, card_code) == (BLOCK, ALLOW, ALLOW)


def test_distinct_recharge_accounts_per_device_across_accounts(shop, counters):
    RiskRuleFactory(
        kind=K.DISTINCT_RECHARGE_ACCOUNTS, subject=Subject.DEVICE, threshold=2
    )
    users = [UserFactory() for _ in range(3)]

    outcomes = [
        shop.checkout(user=u, recharge_account=f"1380000000{i}")
        for i, u in enumerate(users)
    ]

    assert outcomes == [ALLOW, ALLOW, BLOCK]


def test_unpaid_orders_held_per_account(shop, shopper, sku, counters):
    RiskRuleFactory(
        kind=K.UNPAID_ORDERS, subject=Subject.ACCOUNT, threshold=2, window_seconds=None
    )
    now = T0
    expired = risk_order(user=shopper, sku=sku, created_at=now - dt.timedelta(hours=1))
    assert expired.expires_at < now

    first, second = shop.checkout(now=now), shop.checkout(now=now)
    third = shop.checkout(now=now)
    Order.objects.filter(user=shopper, expires_at__gt=now).update(
        status=Order.Status.PAID
    )
    after_paying = shop.checkout(now=now)

    assert (first, second, third, after_paying) == (ALLOW, ALLOW, BLOCK, ALLOW)


def test_scoped_rule_counts_and_limits_only_its_sku(shop, sku, counters):
    RiskRuleFactory(
        kind=K.VELOCITY_ORDERS,
        subject=Subject.DEVICE,
        threshold=1,
        scope="sku",
        sku=sku,
    )
    other = SkuFactory(max_per_order=50)

    others = [shop.checkout(sku=other) for _ in range(3)]
    first, second = shop.checkout(), shop.checkout()

    assert others == [ALLOW] * 3
    assert (first, second) == (ALLOW, BLOCK)


def test_platform_scoped_rule(shop, sku, counters):
    RiskRuleFactory(
        kind=K.VELOCITY_ORDERS,
        subject=Subject.DEVICE,
        threshold=1,
        scope="platform",
        platform=sku.product.platform,
    )
    same_platform = SkuFactory(product__platform=sku.product.platform, max_per_order=5)
    elsewhere = SkuFactory(max_per_order=5)

    first = shop.checkout(sku=same_platform)
    outside = shop.checkout(sku=elsewhere)
    second = shop.checkout()

    assert (first, outside, second) == (ALLOW, ALLOW, BLOCK)


def test_allowlisted_device_passes_a_blocklisted_ip(shop, counters):
    RiskListEntryFactory(list_kind="block", subject="ip", value="198.51.100.0/24")
    RiskListEntryFactory(list_kind="allow", subject="device", value="qa-device")
    RiskRuleFactory(kind=K.BLOCKLIST, subject=Subject.IP, priority=1)
    RiskRuleFactory(
        kind=K.ALLOWLIST, subject=Subject.DEVICE, action="allow", priority=900
    )

    assert shop.checkout(device="qa-device") == ALLOW
    assert shop.checkout(device="someone-else") == BLOCK


def test_captcha_then_solved_captcha(shop, counters):
    RiskRuleFactory(
        kind=K.VELOCITY_ORDERS,
        subject=Subject.DEVICE,
        threshold=1,
        action="captcha",
        priority=10,
    )
    RiskRuleFactory(
        kind=K.VELOCITY_ORDERS,
        subject=Subject.DEVICE,
        threshold=2,
        action="block",
        priority=20,
    )
    shop.checkout()

    asked, _a, _o = shop.assess()
    solved, assessment, _o = shop.assess(captcha_passed=True)
    past_the_block = shop.checkout(captcha_passed=True)

    assert (asked, solved, past_the_block) == (Action.CAPTCHA, ALLOW, BLOCK)
    record = RiskEvaluation.objects.get(pk=assessment.evaluation_id)
    assert record.inputs["captcha_passed"] is True
    assert record.decision == "allow"
    assert [f["action"] for f in record.fired] == ["captcha"]


def test_evaluation_records_no_email_and_a_masked_recharge_account(shop, counters):
    RiskRuleFactory(
        kind=K.VELOCITY_ORDERS, subject=Subject.DEVICE, threshold=0, action="review"
    )

    action, assessment, order = shop.assess(
        email="Secret.Person@Example.COM", recharge_account="13812345678"
    )

    record = RiskEvaluation.objects.get(pk=assessment.evaluation_id)
    stored = str(record.inputs) + str(record.fired)
    assert action == Action.REVIEW
    assert "secret.person" not in stored.lower()
    assert "13812345678" not in stored
    assert record.inputs["email_domain"] == "example.com"
    assert record.inputs["recharge_account"] == "****5678"
    assert record.inputs["counters"] == counters  # the path under test answered
    assert record.order_id == order.pk
    assert (record.stage, record.decision, record.device) == (
        "checkout",
        "review",
        "device-aaaaaaaaaaaaaaaaa",
    )
    assert str(record.ip_address) == "198.51.100.7"
    assert record.fired[0]["detail"] == "orders per device in 3600s: 1 > 0"
    assert assessment.reasons.startswith(record.fired[0]["name"])


def test_rule_changes_apply_to_the_next_checkout(shop, counters):
    rule = RiskRuleFactory(kind=K.ORDER_QUANTITY, subject="", threshold=1)
    assert shop.checkout(quantity=2) == BLOCK

    rule.active = False
    rule.save()

    assert shop.checkout(quantity=2) == ALLOW


def test_ipv6_addresses_are_counted_by_their_64(shop, counters):
    RiskRuleFactory(kind=K.VELOCITY_ORDERS, subject=Subject.IP, threshold=2)

    same_64 = [
        shop.checkout(ip=ip, device=f"d{i}")
        for i, ip in enumerate(
            ["2001:db8:1:2::1", "2001:db8:1:2:abcd::9", "2001:DB8:1:2:ffff::"]
        )
    ]
    next_64 = shop.checkout(ip="2001:db8:1:3::1", device="d9")

    assert same_64 == [ALLOW, ALLOW, BLOCK]
    assert next_64 == ALLOW
