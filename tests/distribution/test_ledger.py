"""Commission on delivered lines (1, 2, 3 levels, discounts, bundles), clawbacks, settlement."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from catalog.models import Sku
from distribution.models import CommissionEntry, Reseller
from distribution.selectors import Balances, reseller_balance_get
from distribution.services import (
    CommissionError,
    commission_on_line_delivered,
    commission_on_line_refunded,
    commission_settle,
)
from orders.services import refund_request
from tests.factories.catalog import SkuFactory
from tests.factories.distribution import (
    LineSpec,
    TierFactory,
    delivered_order,
    leaf_lines,
    rule_set,
)

pytestmark = pytest.mark.django_db
CE = CommissionEntry
D = Decimal
NOW = dt.datetime(2027, 3, 1, 4, 0, tzinfo=dt.UTC)


def deliver(order):
    for line in leaf_lines(order):
        commission_on_line_delivered(order_line_id=line.pk, now=NOW)


def ledger(order):
    """(who, level, kind, amount, state) for every entry on the order, in order."""
    return [
        (e.reseller.user.username, e.level, e.kind, e.amount, e.state)
        for e in CommissionEntry.objects.filter(order_line__order=order)
        .select_related("reseller__user")
        .order_by("order_line_id", "level", "pk")
    ]


def refund(order, line, amount):
    """Refund part of a line through the order side, which claws the commission back
    in the same transaction (distribution/hooks.py); returns the entries it wrote."""
    before = list(CommissionEntry.objects.values_list("pk", flat=True))
    refund_request(order=order, lines=[(line, D(amount))], reason="售后", now=NOW)
    return list(CommissionEntry.objects.exclude(pk__in=before).order_by("level", "pk"))


# --- earning ------------------------------------------------------------------


def test_commission_three_levels_on_what_the_shopper_paid_after_discount(
    alice, dave, rules, sku
):
    order = delivered_order(
        alice, [LineSpec(sku, amount="88.88", discount="11.12")], reseller=dave
    )

    deliver(order)

    # 10 %, 5 %, 2 % of 88.88, each rounded down to the fen.
    assert ledger(order) == [
        ("dave", 1, "earn", D("8.88"), "pending"),
        ("carol", 2, "earn", D("4.44"), "pending"),
        ("bob", 3, "earn", D("1.77"), "pending"),
    ]
    assert reseller_balance_get(reseller_id=dave.pk) == Balances(pending=D("8.88"))
    entry = CommissionEntry.objects.get(reseller=dave)
    assert entry.available_at == NOW + dt.timedelta(days=7)
    assert entry.base_amount == D("88.88")


def test_commission_two_levels_when_the_credited_reseller_has_one_upline(
    alice, carol, rules, sku
):
    order = delivered_order(alice, [LineSpec(sku, amount="50.00")], reseller=carol)

    deliver(order)

    assert ledger(order) == [
        ("carol", 1, "earn", D("5.00"), "pending"),
        ("bob", 2, "earn", D("2.50"), "pending"),
    ]


def test_commission_one_level_for_a_root_reseller(alice, bob, rules, sku):
    order = delivered_order(alice, [LineSpec(sku, amount="50.00")], reseller=bob)

    deliver(order)

    assert ledger(order) == [("bob", 1, "earn", D("5.00"), "pending")]


def test_commission_on_line_delivered_is_written_once_however_often_called(
    alice, carol, rules, sku
):
    order = delivered_order(alice, [LineSpec(sku, amount="50.00")], reseller=carol)
    line = leaf_lines(order)[0]

    first = commission_on_line_delivered(order_line_id=line.pk, now=NOW)
    again = commission_on_line_delivered(order_line_id=line.pk, now=NOW)

    assert [e.pk for e in first] == [e.pk for e in again]
    assert CommissionEntry.objects.count() == 2


def test_commission_nothing_for_an_order_no_reseller_brought(alice, bob, rules, sku):
    order = delivered_order(alice, [LineSpec(sku, amount="50.00")])

    assert commission_on_line_delivered(order_line_id=leaf_lines(order)[0].pk) == []
    assert CommissionEntry.objects.count() == 0


def test_commission_nothing_before_the_line_is_delivered(alice, bob, rules, sku):
    order = delivered_order(alice, [LineSpec(sku, amount="50.00")], reseller=bob)
    line = leaf_lines(order)[0]
    line.__class__.objects.filter(pk=line.pk).update(status="delivering")

    assert commission_on_line_delivered(order_line_id=line.pk) == []


def test_commission_nobody_earns_on_their_own_purchase(carol, dave, rules, sku):
    # carol buys through her own downline's link: dave and bob earn, carol does not.
    order = delivered_order(carol.user, [LineSpec(sku, amount="100.00")], reseller=dave)

    deliver(order)

    assert ledger(order) == [
        ("dave", 1, "earn", D("10.00"), "pending"),
        ("bob", 3, "earn", D("2.00"), "pending"),
    ]


def test_commission_suspended_upline_earns_nothing(alice, carol, rules, sku):
    Reseller.objects.filter(pk=carol.parent_id).update(status="suspended")
    order = delivered_order(alice, [LineSpec(sku, amount="100.00")], reseller=carol)

    deliver(order)

    assert ledger(order) == [("carol", 1, "earn", D("10.00"), "pending")]


def test_commission_most_specific_rule_wins(alice, carol, rules, sku):
    gold = TierFactory(name="高级代理")
    Reseller.objects.filter(pk=carol.pk).update(tier=gold)
    other = SkuFactory(code="OTHER")
    rule_set(1, "0.20", tier=gold)  # tier beats global
    rule_set(2, "0.07", sku=sku)  # SKU beats global for bob
    rule_set(2, "0.30", sku=other, tier=gold)  # another SKU: never applies
    order = delivered_order(alice, [LineSpec(sku, amount="100.00")], reseller=carol)

    deliver(order)

    assert ledger(order) == [
        ("carol", 1, "earn", D("20.00"), "pending"),
        ("bob", 2, "earn", D("7.00"), "pending"),
    ]


def test_commission_sku_and_tier_rule_beats_sku_rule(alice, bob, rules, sku):
    rule_set(1, "0.15", sku=sku)
    rule_set(1, "0.25", sku=sku, tier=bob.tier)
    order = delivered_order(alice, [LineSpec(sku, amount="100.00")], reseller=bob)

    deliver(order)

    assert ledger(order) == [("bob", 1, "earn", D("25.00"), "pending")]


def test_commission_levels_together_never_exceed_what_was_paid(alice, carol, sku):
    rule_set(1, "0.80")
    rule_set(2, "0.50")
    order = delivered_order(alice, [LineSpec(sku, amount="10.00")], reseller=carol)

    deliver(order)

    # 80 % + 50 % is scaled down to 61.53 % + 38.46 %, each rounded down.
    assert ledger(order) == [
        ("carol", 1, "earn", D("6.15"), "pending"),
        ("bob", 2, "earn", D("3.84"), "pending"),
    ]
    refund(order, leaf_lines(order)[0], "5.00")
    assert reseller_balance_get(reseller_id=carol.pk).pending == D("3.07")
    assert reseller_balance_get(reseller_id=carol.parent_id).pending == D("1.92")


def test_commission_below_a_fen_writes_nothing(alice, bob, rules, sku):
    order = delivered_order(alice, [LineSpec(sku, amount="0.09")], reseller=bob)

    deliver(order)

    assert ledger(order) == []


def test_commission_bundle_follows_its_parts_price_shares(alice, carol, rules):
    big = SkuFactory(code="BIG", face_value=D("30.00"))
    small = SkuFactory(code="SMALL", face_value=D("10.00"))
    bundle = SkuFactory(code="BNDL", delivery=Sku.Delivery.BUNDLE, price=D("39.99"))
    rule_set(1, "0.20", sku=bundle)  # the bundle's rule, not its parts'
    order = delivered_order(
        alice,
        [LineSpec(bundle, amount="39.99", parts=[(big, "29.99"), (small, "10.00")])],
        reseller=carol,
    )
    bundle_line = order.lines.get(sku=bundle)

    assert commission_on_line_delivered(order_line_id=bundle_line.pk) == []
    deliver(order)

    assert ledger(order) == [
        ("carol", 1, "earn", D("5.99"), "pending"),  # 20 % of 29.99, rounded down
        ("bob", 2, "earn", D("1.49"), "pending"),
        ("carol", 1, "earn", D("2.00"), "pending"),
        ("bob", 2, "earn", D("0.50"), "pending"),
    ]


# --- refunds ------------------------------------------------------------------


def test_partial_refund_before_settlement_voids_the_refunded_share(
    alice, carol, rules, sku
):
    order = delivered_order(alice, [LineSpec(sku, amount="100.00")], reseller=carol)
    deliver(order)
    line = leaf_lines(order)[0]

    written = refund(order, line, "30.00")

    assert [(e.kind, e.amount, e.state) for e in written] == [
        ("void", D("-3.00"), "pending"),
        ("void", D("-1.50"), "pending"),
    ]
    assert reseller_balance_get(reseller_id=carol.pk) == Balances(pending=D("7.00"))
    assert reseller_balance_get(reseller_id=carol.parent_id) == Balances(
        pending=D("3.50")
    )


def test_full_refund_before_settlement_voids_the_pending_entry(
    alice, carol, rules, sku
):
    order = delivered_order(alice, [LineSpec(sku, amount="100.00")], reseller=carol)
    deliver(order)
    line = leaf_lines(order)[0]
    refund(order, line, "40.00")

    refund(order, line, "60.00")

    assert {e.state for e in CommissionEntry.objects.all()} == {"void"}
    assert reseller_balance_get(reseller_id=carol.pk) == Balances()
    assert commission_settle(now=NOW + dt.timedelta(days=30)) == 0


def test_refund_after_settlement_writes_an_available_reversing_entry(
    alice, carol, rules, sku
):
    order = delivered_order(alice, [LineSpec(sku, amount="100.00")], reseller=carol)
    deliver(order)
    commission_settle(now=NOW + dt.timedelta(days=7))
    line = leaf_lines(order)[0]

    written = refund(order, line, "50.00")

    assert [(e.kind, e.amount, e.state) for e in written] == [
        ("reverse", D("-5.00"), "available"),
        ("reverse", D("-2.50"), "available"),
    ]
    assert reseller_balance_get(reseller_id=carol.pk) == Balances(available=D("5.00"))


def test_partial_refund_voids_settle_together_with_their_entry(alice, bob, rules, sku):
    order = delivered_order(alice, [LineSpec(sku, amount="100.00")], reseller=bob)
    deliver(order)
    refund(order, leaf_lines(order)[0], "25.00")

    assert commission_settle(now=NOW + dt.timedelta(days=6, hours=23)) == 0
    assert commission_settle(now=NOW + dt.timedelta(days=7)) == 2

    assert reseller_balance_get(reseller_id=bob.pk) == Balances(available=D("7.50"))


def test_two_partial_refunds_claw_back_what_one_refund_of_their_sum_would(
    alice, bob, sku
):
    rule_set(1, "0.07")
    order = delivered_order(alice, [LineSpec(sku, amount="100.00")], reseller=bob)
    deliver(order)
    line = leaf_lines(order)[0]

    refund(order, line, "33.33")
    refund(order, line, "33.33")

    # What is left (33.34) earns floor(2.3338) = 2.33 either way.
    assert reseller_balance_get(reseller_id=bob.pk).pending == D("2.33")


def test_refund_hook_repeated_claws_back_nothing_more(alice, bob, rules, sku):
    order = delivered_order(alice, [LineSpec(sku, amount="100.00")], reseller=bob)
    deliver(order)
    line = leaf_lines(order)[0]
    refund(order, line, "30.00")

    again = commission_on_line_refunded(
        order_line_id=line.pk, refunded_amount=D("30.00"), now=NOW
    )

    assert again == []
    assert reseller_balance_get(reseller_id=bob.pk).pending == D("7.00")


def test_refund_hook_refuses_an_amount_the_line_has_not_recorded(
    alice, bob, rules, sku
):
    order = delivered_order(alice, [LineSpec(sku, amount="100.00")], reseller=bob)
    deliver(order)
    line = leaf_lines(order)[0]

    with pytest.raises(CommissionError) as excinfo:
        commission_on_line_refunded(order_line_id=line.pk, refunded_amount=D("1.00"))

    assert excinfo.value.code == "refund_not_on_line"
    assert CommissionEntry.objects.exclude(kind="earn").count() == 0


def test_refund_of_one_bundle_part_claws_back_only_that_parts_commission(
    alice, bob, rules
):
    big = SkuFactory(code="BIG")
    small = SkuFactory(code="SMALL")
    bundle = SkuFactory(code="BNDL", delivery=Sku.Delivery.BUNDLE, price=D("40.00"))
    order = delivered_order(
        alice,
        [LineSpec(bundle, amount="40.00", parts=[(big, "30.00"), (small, "10.00")])],
        reseller=bob,
    )
    deliver(order)

    refund(order, order.lines.get(sku=small), "10.00")

    assert reseller_balance_get(reseller_id=bob.pk) == Balances(pending=D("3.00"))


def test_refund_of_a_line_without_commission_writes_nothing(alice, bob, rules, sku):
    order = delivered_order(alice, [LineSpec(sku, amount="100.00")])
    line = leaf_lines(order)[0]

    assert refund(order, line, "100.00") == []


# --- settlement ------------------------------------------------------------------


def test_commission_settle_moves_only_what_is_due(alice, bob, rules, sku):
    early = delivered_order(alice, [LineSpec(sku, amount="100.00")], reseller=bob)
    deliver(early)
    late = delivered_order(alice, [LineSpec(sku, amount="50.00")], reseller=bob)
    for line in leaf_lines(late):
        commission_on_line_delivered(
            order_line_id=line.pk, now=NOW + dt.timedelta(days=3)
        )

    moved = commission_settle(now=NOW + dt.timedelta(days=8))

    assert moved == 1
    assert reseller_balance_get(reseller_id=bob.pk) == Balances(
        pending=D("5.00"), available=D("10.00")
    )
    assert commission_settle(now=NOW + dt.timedelta(days=8)) == 0


def test_commission_settle_task_settles(alice, bob, rules, sku):
    from distribution.tasks import commission_settle_task

    order = delivered_order(alice, [LineSpec(sku, amount="100.00")], reseller=bob)
    for line in leaf_lines(order):
        commission_on_line_delivered(
            order_line_id=line.pk, now=timezone.now() - dt.timedelta(days=8)
        )

    commission_settle_task.delay()

    assert reseller_balance_get(reseller_id=bob.pk).available == D("10.00")


def test_commission_on_an_order_placed_and_paid_through_checkout(
    client, alice, carol, rules, django_capture_on_commit_callbacks
):
    from django.urls import reverse

    from distribution.services import order_attribute
    from orders.services import order_place
    from tests.conftest import signed_notify
    from tests.factories.fulfillment import stock_codes
    from tests.factories.orders import sandbox_trade_paid

    sku = SkuFactory(code="TX-VIP-MONTH", price=D("25.00"))
    stock_codes(sku, 2)
    order = order_place(user=alice, sku_code=sku.code, quantity=2)
    order_attribute(order=order, referral_code=carol.referral_code)
    sandbox_trade_paid(order)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("orders:payment-notify", args=["sandbox"]), signed_notify(order)
        )

    deliver(order)

    assert ledger(order) == [
        ("carol", 1, "earn", D("5.00"), "pending"),
        ("bob", 2, "earn", D("2.50"), "pending"),
    ]
