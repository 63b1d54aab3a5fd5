"""A reseller's month on the ledger, written through the real services.

Rules: level 1 10 % (tests/distribution/conftest.py `rules`); settlement 7 days;
payout minimum 10.00. `now` is the dashboard's now; every row is dated against it:

    E1  t-20d  200.00 → earn 20.00, settled t-12d, paid by payout #1 (t-11d)
    E2  t-10d  150.00 → earn 15.00, settled t-2d; 50.00 refunded t-1d → reverse −5.00
    E3  t-3d   100.00 → earn 10.00, refunded in full t-1d → void (not counted)
    E4  t-3d    80.00 → earn  8.00, 30.00 refunded t-1d → void entry −3.00 (pending)
    E5  t          50.00 → earn  5.00 pending

Balances: pending 10.00, available 10.00, requested 0, paid 20.00.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from distribution.models import CommissionEntry, Payout, Reseller
from distribution.services import (
    commission_on_line_delivered,
    commission_on_line_refunded,
    commission_settle,
    payout_approve,
    payout_request,
)
from orders.models import Order
from orders.services import refund_request
from tests.factories.distribution import LineSpec, delivered_order, leaf_lines

D = Decimal
DAY = dt.timedelta(days=1)


@dataclass
class Story:
    orders: dict[str, Order]
    payout: Payout


def sale(buyer, reseller, sku, amount, at, *, earn=True) -> Order:
    """A delivered order credited to `reseller`, paid at `at`, its commission written then."""
    order = delivered_order(
        buyer, [LineSpec(sku, amount=amount)], reseller=reseller, now=at
    )
    if earn:
        for line in leaf_lines(order):
            commission_on_line_delivered(order_line_id=line.pk, now=at)
    return order


def refund(order: Order, amount: str, at: dt.datetime) -> None:
    line = leaf_lines(order)[0]
    refund_request(order=order, lines=[(line, D(amount))], reason="售后", now=at)
    # The clawback (a no-op when the order side's hook has written it already).
    commission_on_line_refunded(
        order_line_id=line.pk, refunded_amount=D(amount), now=at
    )


def month_of(reseller: Reseller, buyer, sku, staff, now: dt.datetime) -> Story:
    orders = {"E1": sale(buyer, reseller, sku, "200.00", now - 20 * DAY)}
    commission_settle(now=now - 12 * DAY)
    payout = payout_request(reseller_id=reseller.pk, now=now - 12 * DAY)
    payout_approve(
        payout_id=payout.pk,
        actor=staff,
        transfer_reference="BANK-0001",
        now=now - 11 * DAY,
    )
    orders["E2"] = sale(buyer, reseller, sku, "150.00", now - 10 * DAY)
    commission_settle(now=now - 2 * DAY)
    orders["E3"] = sale(buyer, reseller, sku, "100.00", now - 3 * DAY)
    orders["E4"] = sale(buyer, reseller, sku, "80.00", now - 3 * DAY)
    refund(orders["E2"], "50.00", now - DAY)
    refund(orders["E3"], "100.00", now - DAY)
    refund(orders["E4"], "30.00", now - DAY)
    orders["E5"] = sale(buyer, reseller, sku, "50.00", now)
    payout.refresh_from_db()
    return Story(orders=orders, payout=payout)


def entries_of(reseller: Reseller) -> list[CommissionEntry]:
    return list(CommissionEntry.objects.filter(reseller=reseller).order_by("pk"))
