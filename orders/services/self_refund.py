"""Instant self-service refund: a shopper returns the codes they never revealed.

Within the SKU's window after delivery (catalog Sku.self_refund_hours, 0: off),
one click on the order page gives back the line's unrevealed codes (they go
back on sale) and the money for them (through the gateway that took it, right
after commit: refunds.py). The rules and the amounts are orders/aftersales_rules.py.

A reveal and this refund racing for one code: exactly one wins. The refund
holds the Order row and then the codes' rows; a reveal writes its order event
(a key-share lock on the Order row) before it locks its code row and checks
the code is still sold to the line (orders/services/delivery.py), so it waits
for the refund and then finds the code gone, or the refund waits for it and
then finds the code revealed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from catalog.models import Sku
from config.lib.errors import DomainError
from fulfillment.services.code_returns import (
    card_codes_revealed_ids,
    card_codes_sold_lock,
    card_codes_take_back,
)
from orders.aftersales_rules import self_refund_amount, self_refund_open
from orders.locks import order_lock_for_update_by_id
from orders.models import Order, OrderEvent, OrderLine, Refund, ReturnedCode
from orders.services.refunds import refund_request

LS = OrderLine.Status

# Stored as the refund's and the line's reason in the shop's words; the order
# page translates it (templates/orders/partials/_line_progress.html).
REASON_SELF_REFUND = "买家自助退回未查看的卡密"
ERR_NOT_FOUND = _("订单明细不存在")
ERR_NOT_ELIGIBLE = _("该明细不支持自助退款")
ERR_WINDOW_OFF = _("该商品不支持自助退款")
ERR_WINDOW_CLOSED = _("已超过自助退款时限")
ERR_ALL_REVEALED = _("卡密已查看，不能自助退款；如有问题请提交问题反馈")
ERR_NOTHING_LEFT = _("该明细已没有可退的卡密")


class SelfRefundError(DomainError):
    code = "self_refund_refused"


@dataclass(frozen=True)
class SelfRefunded:
    refund: Refund
    codes: int  # how many codes went back
    amount: Decimal


def line_self_refund(
    *,
    order_id: int,
    line_id: int,
    user: User | None,
    language: str = "",
    now: dt.datetime | None = None,
) -> SelfRefunded:
    """Return a delivered card-code line's unrevealed codes and refund them.

    1. Lock the order; the line must be the shopper's, a card-code line of its
       own (not a bundle's part), delivered, its SKU's window open.
    2. Lock the line's sold codes; keep those never revealed (nor exported).
    3. Refund their share (`self_refund_amount`) through `refund_request`, the
       codes back on sale, each return recorded against the line.
    Locks: Order → CardCode. Raises: SelfRefundError, RefundError (nothing written).
    Idempotent: a second click finds no unrevealed code left.
    """
    now = now or timezone.now()
    with transaction.atomic():
        order = order_lock_for_update_by_id(order_id=order_id)
        if order is None or (
            (order.user_id != user.pk) if user is not None else not order.is_guest
        ):
            raise SelfRefundError(str(ERR_NOT_FOUND), code="not_found")
        line = (
            OrderLine.objects.filter(pk=line_id, order_id=order.id)
            .select_related("sku")
            .first()
        )
        if line is None:
            raise SelfRefundError(str(ERR_NOT_FOUND), code="not_found")
        _check_eligible(order=order, line=line, now=now)
        codes = card_codes_sold_lock(order_line_id=line.id)
        if not codes:
            raise SelfRefundError(str(ERR_NOTHING_LEFT))
        revealed = card_codes_revealed_ids(code_ids=[c.id for c in codes])
        returning = [c for c in codes if c.id not in revealed]
        if not returning:
            raise SelfRefundError(str(ERR_ALL_REVEALED))
        amount = self_refund_amount(
            line_amount=line.amount,
            quantity=line.quantity,
            refundable=line.refundable_amount,
            returning=len(returning),
            still_sold=len(codes),
        )
        if amount <= 0:
            raise SelfRefundError(str(ERR_NOT_ELIGIBLE))
        refund = refund_request(
            order=order,
            lines=[(line, amount)],
            reason=REASON_SELF_REFUND,
            actor_kind=Refund.ActorKind.SHOPPER,
            actor=user,
            now=now,
        )
        if language:
            Refund.objects.filter(pk=refund.pk).update(language=language[:10])
        taken = card_codes_take_back(codes=returning, restock=True, now=now)
        ReturnedCode.objects.bulk_create(
            ReturnedCode(
                code_id=t.code_id,
                line=line,
                batch_id=t.batch_id,
                outcome=ReturnedCode.Outcome.RESTOCKED,
                cause=ReturnedCode.Cause.SELF_REFUND,
                reason=REASON_SELF_REFUND,
                actor=user,
            )
            for t in taken
        )
        OrderEvent.objects.create(
            order=order,
            kind=OrderEvent.Kind.CODES_RETURNED,
            actor=user,
            detail={
                "line": line.id,
                "cause": ReturnedCode.Cause.SELF_REFUND,
                "restocked": [t.hint for t in taken],
                "voided": [],
            },
        )
    return SelfRefunded(refund=refund, codes=len(taken), amount=amount)


def _check_eligible(*, order: Order, line: OrderLine, now: dt.datetime) -> None:
    if (
        line.delivery != Sku.Delivery.CARD_CODE
        or line.parent_id is not None
        or line.status != LS.DELIVERED
        or order.status not in (Order.Status.DELIVERED, Order.Status.PARTIALLY_REFUNDED)
    ):
        raise SelfRefundError(str(ERR_NOT_ELIGIBLE))
    hours = line.sku.self_refund_hours
    if hours <= 0:
        raise SelfRefundError(str(ERR_WINDOW_OFF))
    if not self_refund_open(delivered_at=line.delivered_at, hours=hours, now=now):
        raise SelfRefundError(str(ERR_WINDOW_CLOSED))
