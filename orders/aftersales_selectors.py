"""Reads for after-sales on the order page: self-refund offers, problem reports, buy again.

Everything comes with the order page's own queries (orders/selectors.py
order_get_for_user): the lines carry their SKU's self-refund window, product
and latest report as annotations, and the codes whether they were revealed.
No query of its own.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.db.models import (
    DecimalField,
    Exists,
    F,
    JSONField,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
)
from django.db.models.functions import JSONObject
from django.urls import reverse
from django.utils.dateparse import parse_datetime

from catalog.models import Sku
from fulfillment.models import CardCode, CodeAccessLog
from orders.aftersales_rules import (
    self_refund_amount,
    self_refund_deadline,
    self_refund_open,
)
from orders.models import Order, OrderLine, ProblemReport, Refund


def order_lines_annotate(lines: QuerySet[OrderLine]) -> QuerySet[OrderLine]:
    """The lines with `self_refund_hours`, `product_slug`, `sku_code` (joins) and
    `last_report` (the latest problem report as JSON, a subquery)."""
    latest = (
        ProblemReport.objects.filter(line_id=OuterRef("pk"))
        .order_by("-id")
        .values(
            data=JSONObject(
                id="id",
                kind="kind",
                status="status",
                message="message",
                reply="reply",
                created_at="created_at",
                resolved_at="resolved_at",
            )
        )[:1]
    )
    return lines.annotate(
        self_refund_hours=F("sku__self_refund_hours"),
        product_slug=F("sku__product__slug"),
        sku_code=F("sku__code"),
        last_report=Subquery(latest, output_field=JSONField()),
    )


def order_refunds_annotate(orders: QuerySet[Order]) -> QuerySet[Order]:
    """The orders with `refund_in_progress`: what their refunds not yet confirmed
    by the gateway return (None when none), a subquery.

    Requested, accepted and waiting on the gateway (WeChat Pay settles later), or
    failed and waiting on an operator: the shopper's money is on its way.
    """
    open_refunds = (
        Refund.objects.filter(order_id=OuterRef("pk"))
        .exclude(status=Refund.Status.SUCCEEDED)
        .order_by()
        .values("order_id")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    return orders.annotate(
        refund_in_progress=Subquery(
            open_refunds, output_field=DecimalField(max_digits=12, decimal_places=2)
        )
    )


def order_codes_annotate(codes: QuerySet[CardCode]) -> QuerySet[CardCode]:
    """The codes with `revealed`: their plaintext has left the vault (reveal or export)."""
    return codes.annotate(
        revealed=Exists(CodeAccessLog.objects.filter(code_id=OuterRef("pk")))
    )


@dataclass(frozen=True)
class SelfRefundOffer:
    """What one click gives back now: the unrevealed codes and their money."""

    codes: int
    amount: Decimal
    deadline: dt.datetime


@dataclass(frozen=True)
class ReportView:
    id: int
    kind: str
    kind_label: str
    status: str
    status_label: str
    message: str
    reply: str
    created_at: dt.datetime | None
    resolved_at: dt.datetime | None

    @property
    def is_open(self) -> bool:
        return self.status == ProblemReport.Status.OPEN


def self_refund_window(*, line: OrderLine, now: dt.datetime) -> dt.datetime | None:
    """Until when the line's unrevealed codes may be refunded, if that is still ahead."""
    if (
        line.delivery != Sku.Delivery.CARD_CODE
        or line.parent_id is not None
        or line.status != OrderLine.Status.DELIVERED
    ):
        return None
    hours = int(getattr(line, "self_refund_hours", 0) or 0)
    if not self_refund_open(delivered_at=line.delivered_at, hours=hours, now=now):
        return None
    return self_refund_deadline(delivered_at=line.delivered_at, hours=hours)


def self_refund_offer(
    *, line: OrderLine, order: Order, now: dt.datetime
) -> SelfRefundOffer | None:
    """The one-click refund the order page offers for this line, or None."""
    if order.status not in (Order.Status.DELIVERED, Order.Status.PARTIALLY_REFUNDED):
        return None
    deadline = self_refund_window(line=line, now=now)
    if deadline is None:
        return None
    codes = list(line.codes.all())
    unseen = [c for c in codes if not getattr(c, "revealed", True)]
    if not unseen:
        return None
    amount = self_refund_amount(
        line_amount=line.amount,
        quantity=line.quantity,
        refundable=line.refundable_amount,
        returning=len(unseen),
        still_sold=len(codes),
    )
    if amount <= 0:
        return None
    return SelfRefundOffer(codes=len(unseen), amount=amount, deadline=deadline)


def report_view(*, line: OrderLine) -> ReportView | None:
    """The line's latest problem report, as the shopper sees it."""
    data: Any = getattr(line, "last_report", None)
    if not isinstance(data, dict):
        return None
    kind, status = str(data.get("kind", "")), str(data.get("status", ""))
    return ReportView(
        id=int(data["id"]),
        kind=kind,
        kind_label=str(dict(ProblemReport.Kind.choices).get(kind, kind)),
        status=status,
        status_label=str(dict(ProblemReport.Status.choices).get(status, status)),
        message=str(data.get("message") or ""),
        reply=str(data.get("reply") or ""),
        created_at=parse_datetime(str(data.get("created_at") or "")),
        resolved_at=parse_datetime(str(data.get("resolved_at") or "")),
    )


def buy_again_url(*, order: Order, lines: list[OrderLine]) -> str | None:
    """The product page with the first line's SKU and quantity chosen, for a
    delivered or cancelled order; None for the others."""
    if order.status not in (Order.Status.DELIVERED, Order.Status.CANCELLED):
        return None
    first = next((x for x in lines if x.parent_id is None), None)
    slug = getattr(first, "product_slug", None)
    if first is None or not slug:
        return None
    query = urlencode({"sku": getattr(first, "sku_code", ""), "qty": first.quantity})
    return reverse("storefront:product-detail", args=[slug]) + "?" + query
