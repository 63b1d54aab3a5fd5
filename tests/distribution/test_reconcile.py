"""reconcile_commissions: exit 0 when the books agree, 1 listing every discrepancy."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import execute_from_command_line
from django.utils import timezone

from distribution.models import CommissionEntry, Payout
from distribution.reconcile import commissions_reconcile
from distribution.services import (
    commission_on_line_delivered,
    commission_on_line_refunded,
    commission_settle,
    payout_approve,
    payout_request,
)
from orders.models import OrderLine
from orders.services import refund_request
from tests.factories.distribution import LineSpec, delivered_order, leaf_lines

pytestmark = pytest.mark.django_db
D = Decimal
NOW = dt.datetime(2027, 3, 1, 4, 0, tzinfo=dt.UTC)


def run(capsys):
    """The command as `manage.py` runs it: (exit code, stdout)."""
    try:
        execute_from_command_line(["manage.py", "reconcile_commissions"])
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().out


@pytest.fixture
def books(alice, carol, rules, sku, staff, payout_minimum):
    """Some of everything: earns, a partial refund before and after settlement, a
    paid payout, an open payout, and a fresh pending sale."""
    orders = [
        delivered_order(alice, [LineSpec(sku, amount="200.00")], reseller=carol)
        for _ in range(3)
    ]
    for order in orders:
        commission_on_line_delivered(order_line_id=leaf_lines(order)[0].pk, now=NOW)
    first, second, _third = (leaf_lines(o)[0] for o in orders)
    refund_request(order=orders[0], lines=[(first, D("50.00"))], reason="x", now=NOW)
    commission_on_line_refunded(
        order_line_id=first.pk, refunded_amount=D("50.00"), now=NOW
    )
    commission_settle(now=NOW + dt.timedelta(days=7))
    refund_request(order=orders[1], lines=[(second, D("20.00"))], reason="x")
    commission_on_line_refunded(order_line_id=second.pk, refunded_amount=D("20.00"))
    payout = payout_request(reseller_id=carol.pk)
    payout_approve(payout_id=payout.pk, actor=staff, transfer_reference="T1")
    payout_request(reseller_id=carol.parent_id)
    fresh = delivered_order(alice, [LineSpec(sku, amount="10.00")], reseller=carol)
    commission_on_line_delivered(order_line_id=leaf_lines(fresh)[0].pk)
    return orders


def test_reconcile_commissions_exits_zero_when_the_books_agree(books, capsys):
    code, out = run(capsys)

    assert code == 0
    assert "ok: 2 resellers" in out


def test_reconcile_commissions_lists_every_discrepancy_and_exits_one(
    books, carol, capsys
):
    # 1. A refund whose clawback was never written.
    third = leaf_lines(books[2])[0]
    OrderLine.objects.filter(pk=third.pk).update(refunded_amount=D("200.00"))
    # 2. A payout whose amount no longer matches the entries it paid.
    Payout.objects.filter(status="approved").update(amount=D("1.00"))
    # 3. A commission that settlement never reached.
    late = CommissionEntry.objects.filter(state="pending").first()
    CommissionEntry.objects.filter(pk=late.pk).update(
        available_at=timezone.now() - dt.timedelta(days=30)
    )

    code, out = run(capsys)

    assert code == 1
    lines = out.strip().splitlines()
    assert len(lines) == 4  # line 3 at two levels, the payout, the late entry
    assert sum(f"line #{third.pk} level" in line for line in lines) == 2
    assert any("payout #" in line and "approved, ¥1.00" in line for line in lines)
    assert any(f"entry #{late.pk} still pending" in line for line in lines)
    assert all(line.startswith("reseller ") for line in lines)


def test_reconcile_catches_a_paid_entry_without_a_payout(books, bob):
    entry = CommissionEntry.objects.filter(reseller=bob, state="available").first()
    CommissionEntry.objects.filter(pk=entry.pk).update(payout=None)

    found = [str(d) for d in commissions_reconcile()]

    assert any(f"reseller {bob.referral_code}" in line for line in found)
    assert any("payout #" in line and "requested" in line for line in found)


def test_reconcile_reads_the_ledger_a_batch_of_resellers_at_a_time(
    books, bob, carol, django_assert_num_queries
):
    """The same findings whatever the batch, and statements per batch, not per row."""
    entry = CommissionEntry.objects.filter(reseller=bob, state="available").first()
    CommissionEntry.objects.filter(pk=entry.pk).update(payout=None)
    whole = [str(d) for d in commissions_reconcile()]

    # The reseller ids, then per batch: codes, entries with their lines,
    # balances, payouts.
    with django_assert_num_queries(1 + 2 * 4):
        one_by_one = [str(d) for d in commissions_reconcile(batch=1)]

    assert whole  # bob's open payout no longer holds what it asks
    assert sorted(one_by_one) == sorted(whole)
