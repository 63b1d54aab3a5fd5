"""Property: whatever happens in whatever order, the commission ledger reconciles.

Hypothesis draws a reseller tree (bob → carol → dave) and a sequence of steps:
sales credited to any of them (any amount, any discount, sometimes bought by a
reseller of the tree itself), partial or full refunds of any sale, the clock
moving on and settlement running, payout requests, approvals and rejections.
After every step:

- `commissions_reconcile()` finds nothing (balances shown = ledger, payouts =
  paid entries, each line holds exactly what its unrefunded amount earns);
- no reseller ever has more paid out than settled earnings net of clawbacks;
- each line's commission across levels never exceeds what the shopper paid.

Each example builds its own tree and orders inside the test's transaction.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models import Sum
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from distribution.models import CommissionEntry, Payout
from distribution.reconcile import commissions_reconcile
from distribution.services import (
    PayoutError,
    commission_on_line_delivered,
    commission_on_line_refunded,
    commission_settle,
    payout_approve,
    payout_reject,
    payout_request,
)
from orders.services import refund_request
from tests.factories.accounts import UserFactory
from tests.factories.catalog import SkuFactory
from tests.factories.distribution import (
    LineSpec,
    ResellerFactory,
    TierFactory,
    delivered_order,
    leaf_lines,
    rule_set,
)

D = Decimal
START = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)

# Mostly amounts whose commission can reach the payout minimum, some tiny ones.
cents = st.one_of(st.integers(2_000, 50_000), st.integers(1, 1_999)).map(
    lambda c: D(c) / 100
)
sale = st.tuples(
    st.just("sale"),
    st.integers(0, 2),  # credited reseller: bob, carol, dave
    cents,
    st.integers(0, 3),  # buyer: a shopper, or bob/carol/dave themselves
)
step = st.one_of(
    sale,
    st.tuples(st.just("refund"), st.integers(0, 50), st.floats(0.01, 1.0)),
    st.tuples(st.just("wait"), st.integers(4, 12)),  # days, then settlement runs
    st.tuples(st.just("payout")),  # every reseller asks for their balance
    st.tuples(st.just("decide"), st.booleans()),  # every open request: pay or refuse
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rates=st.tuples(*(st.integers(0, 60).map(lambda p: D(p) / 100) for _ in range(3))),
    opening=st.lists(sale, min_size=1, max_size=5),
    steps=st.lists(step, min_size=4, max_size=25),
)
# The paths that matter most, always tried: paid, then clawed back below zero;
# refused, then paid; refunded in part before settlement, then in full after.
@example(
    rates=(D("0.10"), D("0.05"), D("0.02")),
    opening=[("sale", 2, D("300.00"), 0)],
    steps=[("wait", 8), ("payout",), ("decide", True), ("refund", 0, 1.0), ("wait", 8)],
)
@example(
    rates=(D("0.30"), D("0.40"), D("0.50")),
    opening=[("sale", 2, D("99.99"), 0), ("sale", 1, D("10.00"), 3)],
    steps=[
        ("refund", 0, 0.3),
        ("wait", 8),
        ("payout",),
        ("decide", False),
        ("refund", 0, 1.0),
        ("payout",),
        ("decide", True),
    ],
)
@pytest.mark.django_db
def test_any_sequence_of_sales_refunds_settlements_and_payouts_reconciles(
    rates, opening, steps, settings
):
    settings.PAYOUT_MINIMUM = D("0.01")
    settings.COMMISSION_SETTLEMENT_DAYS = 7
    # Each example in its own savepoint, rolled back: it sees only what it made.
    with transaction.atomic():
        _play(rates, [*opening, *steps])
        event(
            f"payouts: {sorted(set(Payout.objects.values_list('status', flat=True)))}"
        )
        for state in ("paid", "void"):
            seen = CommissionEntry.objects.filter(state=state).exists()
            event(f"{state} entries: {seen}")
        event(
            f"reverse entries: {CommissionEntry.objects.filter(kind='reverse').exists()}"
        )
        transaction.set_rollback(True)


def _play(rates, steps):
    tier = TierFactory(name="普通代理")
    bob = ResellerFactory(tier=tier)
    carol = ResellerFactory(tier=tier, parent=bob)
    dave = ResellerFactory(tier=tier, parent=carol)
    tree = [bob, carol, dave]
    shopper = UserFactory()
    staff = UserFactory(is_staff=True)
    sku = SkuFactory()
    for level, rate in enumerate(rates, start=1):
        rule_set(level, str(rate))
    sales = []
    now = START

    for action, *args in steps:
        if action == "sale":
            credited, amount, buyer = args
            user = shopper if buyer == 0 else tree[buyer - 1].user
            order = delivered_order(
                user, [LineSpec(sku, amount=amount)], reseller=tree[credited], now=now
            )
            line = leaf_lines(order)[0]
            commission_on_line_delivered(order_line_id=line.pk, now=now)
            sales.append((order, line))
        elif action == "refund" and sales:
            order, line = sales[args[0] % len(sales)]
            line.refresh_from_db()
            left = line.amount - line.refunded_amount
            amount = max(D("0.01"), (left * D(str(args[1]))).quantize(D("0.01")))
            if left > 0:
                amount = min(amount, left)
                refund_request(order=order, lines=[(line, amount)], reason="x", now=now)
                commission_on_line_refunded(
                    order_line_id=line.pk, refunded_amount=amount, now=now
                )
        elif action == "wait":
            now += dt.timedelta(days=args[0])
            commission_settle(now=now)
        elif action == "payout":
            for reseller in tree:
                with contextlib.suppress(PayoutError):
                    payout_request(reseller_id=reseller.pk, now=now)
        elif action == "decide":
            for payout in Payout.objects.filter(status="requested").order_by("pk"):
                if args[0]:
                    payout_approve(
                        payout_id=payout.pk,
                        actor=staff,
                        transfer_reference="T",
                        now=now,
                    )
                else:
                    payout_reject(payout_id=payout.pk, actor=staff, reason="x", now=now)

        assert commissions_reconcile(now=now) == []
        for reseller in tree:
            settled = CommissionEntry.objects.filter(
                reseller=reseller, state__in=["available", "paid"]
            ).aggregate(s=Sum("amount"))["s"] or D(0)
            approved = Payout.objects.filter(
                reseller=reseller, status="approved"
            ).aggregate(s=Sum("amount"))["s"] or D(0)
            assert approved <= settled + _clawed_after_payout(reseller)
        for _order, line in sales:
            line.refresh_from_db()
            held = CommissionEntry.objects.filter(order_line=line).exclude(
                state="void"
            ).aggregate(s=Sum("amount"))["s"] or D(0)
            assert D(0) <= held <= line.amount - line.refunded_amount


def _clawed_after_payout(reseller) -> Decimal:
    """Clawbacks may take settled money below what was already paid out."""
    return -(
        CommissionEntry.objects.filter(reseller=reseller, kind="reverse").aggregate(
            s=Sum("amount")
        )["s"]
        or D(0)
    )
