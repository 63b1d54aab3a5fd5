"""Reads for the shopper's order pages."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet

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


def order_list_for_user(*, user_id: int) -> QuerySet[Order]:
    return (
        Order.objects.filter(user_id=user_id)
        .prefetch_related("lines")
        .order_by("-created_at")
    )


def order_page_context(*, order: Order) -> dict[str, Any]:
    trade = None
    if order.status == Order.Status.PENDING:
        trade = (
            SandboxTrade.objects.filter(out_trade_no=order.number)
            .order_by("-created_at")
            .first()
        )
    return {
        "order": order,
        "lines": list(order.lines.all()),
        "awaiting_notify": trade is not None
        and trade.status == SandboxTrade.Status.PAID,
        "revealed": {},
    }
