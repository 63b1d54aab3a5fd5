"""Orders held for review after payment: an operator approves or rejects them.

A risk rule (issue: risk control) holds a paid order by calling
`order_mark_paid(..., hold_reason=...)`; its stock stays reserved meanwhile.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from orders.locks import order_lock_for_update_by_id
from orders.models import Order, OrderEvent, Refund
from orders.services.delivery import order_fulfil
from orders.services.refunds import RefundError, refund_request


class ReviewError(RefundError):
    code = "review_error"


def order_review_approve(*, order_id: int, actor: User) -> Order:
    """Release a held order: deliver it now.

    Locks: Order. Raises: ReviewError when it is not in review.
    """
    with transaction.atomic():
        order = order_lock_for_update_by_id(order_id=order_id)
        if order is None or order.status != Order.Status.REVIEW:
            raise ReviewError(_("该订单不在审核中"))
        OrderEvent.objects.create(
            order=order,
            kind=OrderEvent.Kind.FULFILLING,
            actor=actor,
            detail={"review": "approved"},
        )
        order_fulfil(order=order, now=timezone.now())
    return order


def order_review_reject(*, order_id: int, actor: User, reason: str) -> Refund:
    """Refuse a held order: every line is refunded in full and its codes released.

    Locks: Order. Raises: ReviewError when it is not in review.
    """
    with transaction.atomic():
        order = order_lock_for_update_by_id(order_id=order_id)
        if order is None or order.status != Order.Status.REVIEW:
            raise ReviewError(_("该订单不在审核中"))
        lines = [
            (line, line.refundable_amount)
            for line in order.lines.all()
            if not line.is_bundle and line.refundable_amount > 0
        ]
        return refund_request(
            order=order,
            lines=lines,
            reason=reason,
            actor_kind=Refund.ActorKind.OPERATOR,
            actor=actor,
        )
