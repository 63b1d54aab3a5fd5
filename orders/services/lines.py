"""What the order side does when a line's supplier work ends (fulfillment calls these)."""

from __future__ import annotations

import datetime as dt

from orders.models import OrderEvent, OrderLine
from orders.services.delivery import order_settle
from orders.services.refunds import refund_request
from orders.transitions import lines_move

LS = OrderLine.Status


def order_line_topup_delivered(*, line_id: int, now: dt.datetime) -> bool:
    """A line's top-up succeeded: the line is delivered and the order settled.

    The caller holds the Order row lock. Idempotent: False when the line is not
    delivering any more.
    """
    line = OrderLine.objects.select_related("order").get(pk=line_id)
    if line.status != LS.DELIVERING:
        return False
    lines_move([line], LS.DELIVERED, now=now, delivered_at=now)
    OrderEvent.objects.create(
        order=line.order,
        kind=OrderEvent.Kind.LINE_DELIVERED,
        detail={"line": line.id, "sku": line.sku_name},
    )
    order_settle(order=line.order, now=now)
    return True


def order_line_topup_failed(*, line_id: int, reason: str, now: dt.datetime) -> bool:
    """No supplier could deliver a line: it is refunded in full, with the reason shown.

    The caller holds the Order row lock. Idempotent: False when the line is not
    delivering any more.
    """
    line = OrderLine.objects.select_related("order").get(pk=line_id)
    if line.status != LS.DELIVERING:
        return False
    if line.refundable_amount > 0:
        refund_request(
            order=line.order,
            lines=[(line, line.refundable_amount)],
            reason=reason,
            now=now,
        )
    else:
        # A free part of a bundle: nothing to pay back, but the line still ends.
        lines_move([line], LS.REFUNDED, now=now, status_reason=reason[:200])
        order_settle(order=line.order, now=now)
    return True
