"""Commissions follow the order side: written when lines are delivered, clawed back
when they are refunded, in the same transaction (distribution/hooks.py).

dave → carol → bob (tests/distribution/conftest.py) earn 10 %, 5 % and 2 %.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django.urls import reverse

from distribution import hooks
from distribution.hooks import commissions_catch_up
from distribution.models import CommissionEntry, OrderAttribution
from distribution.reconcile import commissions_reconcile
from distribution.services import commission_settle, order_attribute
from orders.locks import order_lock_for_update_by_id
from orders.models import Order, OrderLine
from orders.services import order_mark_paid, order_place, refund_request
from tests.conftest import signed_notify
from tests.factories.catalog import ProductFactory, SkuFactory
from tests.factories.fulfillment import stock_codes

pytestmark = pytest.mark.django_db

CE = CommissionEntry
D = Decimal
NOTIFY_URL = reverse("orders:payment-notify", args=["sandbox"])


@pytest.fixture
def month(db):
    product = ProductFactory(name="腾讯视频 VIP", slug="tx-vip")
    sku = SkuFactory(product=product, code="TX-M", price=D("100.00"), max_per_order=5)
    stock_codes(sku, 10)
    return sku


def ledger(order):
    """(who, level, kind, amount, state) of every entry on the order, as written."""
    return [
        (e.reseller.user.username, e.level, e.kind, e.amount, e.state)
        for e in CommissionEntry.objects.filter(order_line__order=order)
        .select_related("reseller__user")
        .order_by("pk")
    ]


def pay(order) -> None:
    response = Client().post(NOTIFY_URL, signed_notify(order, trade_no=order.number))
    assert response.content == b"success"


def credited_order(buyer, reseller, *, quantity=1) -> Order:
    order = order_place(user=buyer, sku_code="TX-M", quantity=quantity)
    order_attribute(order=order, referral_code=reseller.referral_code)
    return order


def refund(order, amount: str, *, now=None) -> None:
    """A refund of part of the order's line, as after-sales requests it (order locked)."""
    with transaction.atomic():
        locked = order_lock_for_update_by_id(order_id=order.pk)
        line = locked.lines.get()
        refund_request(order=locked, lines=[(line, D(amount))], reason="售后", now=now)


def test_a_purchase_through_a_share_link_earns_three_levels_and_a_refund_voids_them(
    client, alice, dave, rules, month, settings
):
    settings.COMMISSION_SETTLEMENT_DAYS = 7
    # given: alice follows dave's share link, signs in and buys two
    client.get(f"/p/tx-vip/?ref={dave.referral_code}")
    client.force_login(alice)
    response = client.post(
        reverse("orders:checkout"), {"sku": "TX-M", "quantity": 2, "token": "t"}
    )
    assert response.status_code == 302
    order = Order.objects.get()

    # when: the gateway says paid, and the codes are delivered at once
    pay(order)

    # then: each level's pending commission on the ¥200.00 she paid
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    assert ledger(order) == [
        ("dave", 1, "earn", D("20.00"), "pending"),
        ("carol", 2, "earn", D("10.00"), "pending"),
        ("bob", 3, "earn", D("4.00"), "pending"),
    ]
    line = order.lines.get()
    earn = CommissionEntry.objects.filter(level=1).get()
    assert earn.available_at == line.delivered_at + dt.timedelta(days=7)

    # when: after-sales refunds ¥50.00 of it, then the rest
    refund(order, "50.00")
    assert ledger(order)[3:] == [
        ("dave", 1, "void", D("-5.00"), "pending"),
        ("carol", 2, "void", D("-2.50"), "pending"),
        ("bob", 3, "void", D("-1.00"), "pending"),
    ]
    refund(order, "150.00")

    # then: nothing is left to earn, and the books agree
    assert {state for *_rest, state in ledger(order)} == {"void"}
    assert commissions_reconcile() == []
    call_command("reconcile_commissions")  # exits 0


def test_a_refund_after_settlement_writes_available_reversing_entries(
    alice, dave, rules, month
):
    order = credited_order(alice, dave)
    pay(order)
    delivered_at = order.lines.get().delivered_at
    commission_settle(now=delivered_at + dt.timedelta(days=8))

    refund(order, "100.00")

    assert ledger(order) == [
        ("dave", 1, "earn", D("10.00"), "available"),
        ("carol", 2, "earn", D("5.00"), "available"),
        ("bob", 3, "earn", D("2.00"), "available"),
        ("dave", 1, "reverse", D("-10.00"), "available"),
        ("carol", 2, "reverse", D("-5.00"), "available"),
        ("bob", 3, "reverse", D("-2.00"), "available"),
    ]
    assert commissions_reconcile() == []


def test_an_order_nobody_brought_earns_nothing(alice, dave, rules, month):
    order = order_place(user=alice, sku_code="TX-M", quantity=1)

    pay(order)

    assert Order.objects.get().status == Order.Status.DELIVERED
    assert not CommissionEntry.objects.exists()


def test_only_orders_credited_to_someone_are_partnered(alice, dave, rules, month):
    plain = order_place(user=alice, sku_code="TX-M", quantity=1)
    credited = credited_order(alice, dave)
    by_hand = order_place(user=alice, sku_code="TX-M", quantity=1)
    # Written through the ORM (the admin, a script): marked all the same.
    OrderAttribution.objects.create(
        order=by_hand, reseller=dave, channel=OrderAttribution.Channel.REFERRAL_LINK
    )

    stored = Order.objects.in_bulk([plain.pk, credited.pk, by_hand.pk])
    assert [stored[o.pk].partnered for o in (plain, credited, by_hand)] == [
        False,
        True,
        True,
    ]
    pay(by_hand)  # the hooks look at a partnered order: its earns are written
    assert [e[:3] for e in ledger(by_hand)] == [
        ("dave", 1, "earn"),
        ("carol", 2, "earn"),
        ("bob", 3, "earn"),
    ]


def test_a_resellers_own_purchase_earns_nothing_at_their_level(
    carol, dave, rules, month
):
    # carol buys through her downline dave's link: dave earns, carol does not.
    order = credited_order(carol.user, dave)

    pay(order)

    assert ledger(order) == [
        ("dave", 1, "earn", D("10.00"), "pending"),
        ("bob", 3, "earn", D("2.00"), "pending"),
    ]


def test_a_delivery_rolled_back_leaves_no_commission(alice, dave, rules, month):
    order = credited_order(alice, dave)

    written_inside = []

    class Crash(Exception):
        pass

    def deliver_then_die():
        with transaction.atomic():
            locked = order_lock_for_update_by_id(order_id=order.pk)
            payment = locked.payments.create(
                gateway="sandbox", trade_no="T9", amount=locked.total_amount
            )
            order_mark_paid(order=locked, payment=payment)
            written_inside.append(CommissionEntry.objects.count())
            raise Crash  # the process dies before commit

    with pytest.raises(Crash):
        deliver_then_die()

    assert written_inside == [3]  # written with the delivery, in its transaction
    assert OrderLine.objects.get().status == OrderLine.Status.RESERVED
    assert not CommissionEntry.objects.exists()


def test_a_failing_commission_hook_never_costs_the_shopper_their_codes(
    alice, dave, rules, month, monkeypatch, caplog
):
    order = credited_order(alice, dave)

    def broken(**kwargs):
        CommissionEntry.objects.create()  # a bug: violates the ledger's constraints

    monkeypatch.setattr(hooks, "commission_on_line_delivered", broken)
    with caplog.at_level(logging.ERROR, logger="distribution.hooks"):
        pay(order)

    assert Order.objects.get().status == Order.Status.DELIVERED
    assert not CommissionEntry.objects.exists()
    assert "run commissions_catch_up" in caplog.text

    monkeypatch.undo()
    assert commissions_catch_up() == 1
    line = order.lines.get()
    assert ledger(order) == [
        ("dave", 1, "earn", D("10.00"), "pending"),
        ("carol", 2, "earn", D("5.00"), "pending"),
        ("bob", 3, "earn", D("2.00"), "pending"),
    ]
    assert {e.created_at for e in CommissionEntry.objects.all()} == {line.delivered_at}
    assert commissions_reconcile() == []


def test_a_failing_clawback_never_blocks_the_refund_and_the_catch_up_writes_it(
    alice, dave, rules, month, monkeypatch
):
    order = credited_order(alice, dave)
    pay(order)

    def broken(**kwargs):
        raise RuntimeError("ledger bug")

    monkeypatch.setattr(hooks, "commission_on_line_refunded", broken)
    refund(order, "40.00")

    assert Order.objects.get().refunded_amount == D("0")  # the gateway confirms later
    assert OrderLine.objects.get().refunded_amount == D("40.00")
    assert len(commissions_reconcile()) == 3  # one missing clawback per level

    monkeypatch.undo()
    commissions_catch_up()

    assert [amount for _w, _l, kind, amount, _s in ledger(order) if kind == "void"] == [
        D("-4.00"),
        D("-2.00"),
        D("-0.80"),
    ]
    assert commissions_reconcile() == []


def test_the_catch_up_changes_nothing_on_a_clean_ledger(alice, dave, rules, month):
    order = credited_order(alice, dave)
    pay(order)
    refund(order, "30.00")
    before = ledger(order)

    commissions_catch_up()
    call_command("commissions_catch_up", "--days", "3")

    assert ledger(order) == before
    assert commissions_reconcile() == []


def test_the_catch_up_command_looks_at_credited_lines_that_were_refunded(
    alice, dave, rules, month, capsys
):
    credited = credited_order(alice, dave)
    pay(credited)
    refund(credited, "10.00")
    nobodys = order_place(user=alice, sku_code="TX-M", quantity=1)
    pay(nobodys)
    refund(nobodys, "10.00")

    call_command("commissions_catch_up")

    assert capsys.readouterr().out.strip() == "lines looked at: 1"


def test_a_substore_order_earns_its_owner_the_margin_and_the_upline_its_commission(
    client, alice, dave, rules, month
):
    # given: dave's tier buys at 20 % off (¥80.00) and his sub-store adds 25 %
    dave.tier.discount_rate = D("0.20")
    dave.tier.save()
    dave.substore_slug, dave.markup_rate = "daves", D("0.25")
    dave.save()
    client.force_login(alice)

    # when: alice buys two in the sub-store (¥100.00 each) and pays
    response = client.post(
        reverse("orders:checkout"),
        {"sku": "TX-M", "quantity": 2, "token": "t", "substore": "daves"},
    )
    assert response.status_code == 302
    order = Order.objects.get()
    assert order.total_amount == D("200.00")
    assert order.attribution.margin == D("40.00")  # 200.00 - 2 × 80.00
    pay(order)

    # then: dave's margin at level 0 instead of a level-1 commission; his
    # upline still earns levels 2 and 3 on what alice paid
    assert ledger(order) == [
        ("dave", 0, "earn", D("40.00"), "pending"),
        ("carol", 2, "earn", D("10.00"), "pending"),
        ("bob", 3, "earn", D("4.00"), "pending"),
    ]

    # when: a quarter is refunded, then the rest
    refund(order, "50.00")
    assert ledger(order)[3] == ("dave", 0, "void", D("-10.00"), "pending")
    refund(order, "150.00")
    assert {state for *_rest, state in ledger(order)} == {"void"}
    assert commissions_reconcile() == []


def test_one_line_the_catch_up_cannot_write_does_not_stall_the_others(
    alice, dave, rules, month, monkeypatch, caplog
):
    first, second = credited_order(alice, dave), credited_order(alice, dave)
    for order in (first, second):
        pay(order)
    CommissionEntry.objects.all().delete()  # as if both delivery hooks had failed
    real = hooks.commission_on_line_delivered
    stuck = first.lines.get().pk

    def broken_for_the_first(*, order_line_id, now=None):
        if order_line_id == stuck:
            raise RuntimeError("ledger bug")
        return real(order_line_id=order_line_id, now=now)

    monkeypatch.setattr(hooks, "commission_on_line_delivered", broken_for_the_first)
    with caplog.at_level(logging.ERROR, logger="distribution.hooks"):
        commissions_catch_up()

    assert ledger(first) == []
    assert [level for _w, level, *_rest in ledger(second)] == [1, 2, 3]
    assert "commission catch-up failed" in caplog.text


def test_a_substore_margin_that_is_no_round_rate_is_earned_to_the_fen(
    client, alice, dave, rules, month
):
    # ¥100.00 wholesale + 5 %: the margin is ¥5.00 of ¥105.00 (4.7619… %)
    dave.substore_slug, dave.markup_rate = "daves", D("0.05")
    dave.save()
    client.force_login(alice)
    client.post(
        reverse("orders:checkout"),
        {"sku": "TX-M", "quantity": 1, "token": "t", "substore": "daves"},
    )
    order = Order.objects.get()
    pay(order)

    assert ledger(order)[0] == ("dave", 0, "earn", D("5.00"), "pending")
    refund(order, "105.00")
    assert {state for *_rest, state in ledger(order)} == {"void"}
    assert commissions_reconcile() == []
