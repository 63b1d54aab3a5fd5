"""Reads for operator alerts: SKUs running low, and what waits on a human.

Plain reads, no locks: the alert check must never wait on (or hold up) an order,
a refund or a top-up in flight. What it reads may be a moment old; the next run
sees the rest.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from catalog.models import Sku
from catalog.selectors import sku_on_sale_q
from fulfillment.models import TopUp
from fulfillment.selectors import card_code_stock_counts, topup_needs_human_q
from orders.models import (
    OperatorAlert,
    OperatorAlertKind,
    Order,
    ProblemReport,
    Refund,
)


@dataclass(frozen=True)
class LowStock:
    sku: Sku
    available: int
    threshold: int


def low_stock_list(*, now: dt.datetime, day: dt.date) -> list[LowStock]:
    """Card-code SKUs on sale whose sellable codes fall below their threshold,
    not yet alerted on `day` (two queries).

    "Sellable" as the storefront counts it (fulfillment.selectors). A threshold
    of 0 means no alert, as it means no restock (fulfillment/services/restock.py).
    """
    alerted = OperatorAlert.objects.filter(
        kind=OperatorAlertKind.LOW_STOCK, sku=OuterRef("pk"), day=day
    )
    skus = list(
        Sku.objects.filter(
            sku_on_sale_q(now),
            delivery=Sku.Delivery.CARD_CODE,
            low_stock_threshold__gt=0,
        )
        .exclude(Exists(alerted))
        .select_related("product")
        .order_by("id")
    )
    stock = card_code_stock_counts(sku_ids=[s.id for s in skus], now=now)
    return [
        LowStock(sku=s, available=stock[s.id], threshold=s.low_stock_threshold)
        for s in skus
        if stock[s.id] < s.low_stock_threshold
    ]


def order_review_waiting_list() -> QuerySet[Order]:
    """Orders held for review, whoever has waited longest first."""
    return Order.objects.filter(status=Order.Status.REVIEW).order_by("paid_at", "id")


# A refund the gateway accepted (WeChat: PROCESSING) normally settles within
# minutes; one still waiting after this long needs a human to look at it.
REFUND_SUBMITTED_TOO_LONG = dt.timedelta(days=1)


def refund_failed_list(now: dt.datetime | None = None) -> QuerySet[Refund]:
    """Refunds the gateway refused, and those it accepted more than a day ago
    without settling them: money owed until an operator acts."""
    stuck_before = (now or timezone.now()) - REFUND_SUBMITTED_TOO_LONG
    return (
        Refund.objects.filter(
            Q(status=Refund.Status.FAILED)
            | Q(status=Refund.Status.SUBMITTED, claimed_at__lte=stuck_before)
        )
        .select_related("order")
        .order_by("created_at", "id")
    )


def problem_report_open_list() -> QuerySet[ProblemReport]:
    """Problem reports no operator has answered yet, oldest first."""
    return (
        ProblemReport.objects.filter(status=ProblemReport.Status.OPEN)
        .select_related("order")
        .order_by("created_at", "id")
    )


def topup_attention_list(*, now: dt.datetime) -> QuerySet[TopUp]:
    """Top-ups flagged for a human or open past their deadline, oldest first."""
    return (
        TopUp.objects.filter(topup_needs_human_q(now=now))
        .select_related("order_line__order", "sku")
        .order_by("created_at", "id")
    )
