"""Delivery: hand a paid order its codes, and reveal a code to its buyer."""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils.translation import gettext as _

from accounts.models import User
from config.lib.errors import DomainError
from fulfillment.models import CardCode, CodeAccessLog
from fulfillment.services import card_code_reveal, card_codes_mark_sold
from orders.models import Order, OrderEmail, OrderEvent
from orders.services.emails import order_email_queue

logger = logging.getLogger(__name__)


class RevealError(DomainError):
    code = "reveal_error"


def order_deliver(*, order: Order, now: dt.datetime) -> bool:
    """Mark a paid order's reserved codes sold and the order delivered.

    Runs inside the caller's transaction with the Order row locked. Card codes
    need no worker, so a paid order is delivered within the notify request.
    Returns False (order left `fulfilling` for an operator) if a line lacks codes,
    which the reservation constraints should make impossible.
    Idempotent: a delivered order is left alone.
    """
    if order.status == Order.Status.DELIVERED:
        return True
    order.status = Order.Status.FULFILLING
    complete = True
    for line in order.lines.all():
        sold = card_codes_mark_sold(
            order_line_id=line.id, quantity=line.quantity, now=now
        )
        if sold == line.quantity:
            line.delivered_at = now
            line.save(update_fields=["delivered_at"])
        else:
            complete = False
            logger.error(
                "order %s line %s has %d of %d codes; left for an operator",
                order.number,
                line.id,
                sold,
                line.quantity,
            )
    if complete:
        order.status = Order.Status.DELIVERED
        order.delivered_at = now
        OrderEvent.objects.create(order=order, kind=OrderEvent.Kind.DELIVERED)
        order_email_queue(order=order, kind=OrderEmail.Kind.DELIVERED)
    order.save(update_fields=["status", "delivered_at", "updated_at"])
    return complete


def order_code_reveal(
    *, order: Order, code_id: int, user: User, ip_address: str | None = None
) -> str:
    """Decrypt one of the buyer's codes; audited on the code and on the order.

    Raises: RevealError when the order is not delivered or the code is not its own.
    """
    if order.user_id != user.pk:
        raise RevealError(_("无权查看该卡密"))
    if order.status not in (Order.Status.DELIVERED, Order.Status.PARTIALLY_REFUNDED):
        raise RevealError(_("订单尚未发货，暂不能查看卡密"))
    code = CardCode.objects.filter(
        id=code_id, order_line__order_id=order.id, status=CardCode.Status.SOLD
    ).first()
    if code is None:
        raise RevealError(_("该卡密不属于此订单"))
    with transaction.atomic():
        OrderEvent.objects.create(
            order=order,
            kind=OrderEvent.Kind.CODE_REVEALED,
            actor_id=user.pk,
            detail={"code_id": code.id, "hint": code.hint},
        )
        return card_code_reveal(
            code=code,
            actor=user,
            action=CodeAccessLog.Action.REVEALED_BY_BUYER,
            ip_address=ip_address,
        )
