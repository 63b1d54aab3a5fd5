"""Reads for the shopper's order pages."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db.models import Prefetch, QuerySet

from catalog.selectors import sku_get_on_sale
from fulfillment.availability import SkuOffer, sku_offers
from fulfillment.models import CardCode
from orders.models import Order, OrderLine, SandboxTrade


def order_get_for_user(*, number: str, user_id: int) -> Order | None:
    return (
        Order.objects.filter(number=number, user_id=user_id)
        .prefetch_related(
            Prefetch(
                "lines",
                queryset=OrderLine.objects.prefetch_related(
                    Prefetch(
                        "codes",
                        queryset=CardCode.objects.filter(status=CardCode.Status.SOLD)
                        .only("id", "hint", "order_line_id", "status")
                        .order_by("id"),
                    )
                ),
            )
        )
        .first()
    )


def offer_get(*, code: str, now: dt.datetime | None = None) -> SkuOffer | None:
    """One SKU on sale now, by its code, with what can be sold of it; None when not for sale."""
    sku = sku_get_on_sale(code=code, now=now)
    if sku is None:
        return None
    return sku_offers(skus=[sku], now=now)[0]


def order_list_for_user(*, user_id: int) -> QuerySet[Order]:
    return (
        Order.objects.filter(user_id=user_id)
        .prefetch_related("lines")
        .order_by("-created_at")
    )


@dataclass(frozen=True)
class LineView:
    """A line as the order page shows it: a bundle with its parts, or a line alone."""

    line: OrderLine
    parts: list[OrderLine]

    @property
    def leaves(self) -> list[OrderLine]:
        return self.parts or [self.line]


# Line states the shopper is still waiting on while the order is paid.
_IN_FLIGHT = {OrderLine.Status.RESERVED, OrderLine.Status.DELIVERING}


def order_page_context(*, order: Order) -> dict[str, Any]:
    """Everything the order page needs; the lines come prefetched by order_get_for_user."""
    trade = None
    if order.status == Order.Status.PENDING:
        trade = (
            SandboxTrade.objects.filter(out_trade_no=order.number)
            .order_by("-created_at")
            .first()
        )
    lines = list(order.lines.all())
    views = [
        LineView(line=line, parts=[p for p in lines if p.parent_id == line.id])
        for line in lines
        if line.parent_id is None
    ]
    awaiting_notify = trade is not None and trade.status == SandboxTrade.Status.PAID
    paid = order.status in (Order.Status.PAID, Order.Status.FULFILLING)
    return {
        "order": order,
        "lines": views,
        "awaiting_notify": awaiting_notify,
        # The page polls itself while something is still on its way.
        "in_flight": awaiting_notify
        or (
            paid
            and any(leaf.status in _IN_FLIGHT for view in views for leaf in view.leaves)
        ),
        "revealed": {},
    }
