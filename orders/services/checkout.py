"""Checkout: place an order and reserve its stock; cancel and expire unpaid orders."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts.models import User
from catalog.models import Sku
from catalog.selectors import sku_get_on_sale
from config.lib.errors import DomainError
from config.lib.money import quantize
from fulfillment.services import (
    ERR_OUT_OF_STOCK,
    OutOfStockError,
    card_codes_release,
    card_codes_reserve,
)
from orders.locks import order_lock_for_update_by_id, user_lock_for_update
from orders.models import Order, OrderEvent, OrderLine

logger = logging.getLogger(__name__)

EXPIRE_BATCH = 500


class CheckoutError(DomainError):
    code = "checkout_error"


class SkuUnavailableError(CheckoutError):
    code = "sku_unavailable"


class InvalidQuantityError(CheckoutError):
    code = "invalid_quantity"


class TooManyUnpaidOrdersError(CheckoutError):
    code = "too_many_unpaid_orders"


def order_check(*, sku: Sku, quantity: int, available: int | None = None) -> None:
    """The checks a checkout makes before anything is written (also for the confirm page).

    Raises: SkuUnavailableError, InvalidQuantityError, OutOfStockError (when the
    known `available` stock is short; checkout itself learns it by reserving).
    """
    if sku.delivery != Sku.Delivery.CARD_CODE:
        raise SkuUnavailableError(_("该商品暂未开放购买"))
    if not sku.min_per_order <= quantity <= sku.max_per_order:
        raise InvalidQuantityError(
            _("购买数量须在 %(min)d 到 %(max)d 之间")
            % {"min": sku.min_per_order, "max": sku.max_per_order}
        )
    if available is not None and available < quantity:
        raise OutOfStockError(
            ERR_OUT_OF_STOCK % {"sku": sku.name, "available": available}
        )


def order_place(
    *,
    user: User,
    sku_code: str,
    quantity: int,
    client_token: str = "",
    ip_address: str | None = None,
    now: dt.datetime | None = None,
) -> Order:
    """Create an order and reserve its codes in one transaction.

    1. The SKU must be on sale now, sold as card codes, and the quantity in its limits.
    2. Lock the shopper's row: the same client_token returns the order it already made
       (double click), and no shopper holds more than ORDER_MAX_UNPAID_PER_USER unpaid.
    3. Create the order and line, then take free codes with SKIP LOCKED.
    Raises: SkuUnavailableError, InvalidQuantityError, TooManyUnpaidOrdersError,
        OutOfStockError (nothing is created).
    Locks: User, then CardCode (skip locked).
    Idempotent: on client_token.
    """
    now = now or timezone.now()
    sku = sku_get_on_sale(code=sku_code, now=now)
    if sku is None:
        raise SkuUnavailableError(_("该商品当前不在售"))
    order_check(sku=sku, quantity=quantity)

    with transaction.atomic():
        user_lock_for_update(user_id=user.pk)
        if client_token:
            existing = Order.objects.filter(
                user_id=user.pk, client_token=client_token
            ).first()
            if existing is not None:
                return existing
        unpaid = Order.objects.filter(
            user_id=user.pk, status=Order.Status.PENDING, expires_at__gt=now
        ).count()
        if unpaid >= settings.ORDER_MAX_UNPAID_PER_USER:
            raise TooManyUnpaidOrdersError(
                _("您已有 %(n)d 笔未支付订单，请先支付或等待其过期后再下单")
                % {"n": unpaid}
            )
        total = quantize(sku.price * quantity)
        order = Order.objects.create(
            user_id=user.pk,
            email=getattr(user, "email", ""),
            total_amount=total,
            client_token=client_token,
            ip_address=ip_address,
            expires_at=now
            + dt.timedelta(minutes=settings.ORDER_PAYMENT_TIMEOUT_MINUTES),
        )
        line = OrderLine.objects.create(
            order=order,
            sku=sku,
            product_name=sku.product.name,
            sku_name=sku.name,
            validity_text=_snapshot_text(sku),
            redeem_instructions=sku.product.redeem_instructions,
            quantity=quantity,
            unit_price=sku.price,
            amount=total,
        )
        card_codes_reserve(sku=sku, order_line_id=line.id, quantity=quantity, now=now)
        OrderEvent.objects.create(
            order=order,
            kind=OrderEvent.Kind.PLACED,
            actor_id=user.pk,
            detail={"sku": sku.code, "quantity": quantity, "total": str(total)},
        )
    return order


def _snapshot_text(sku: Sku) -> str:
    # Stored once and shown to everyone: in the shop's language, not the buyer's.
    with translation.override(settings.LANGUAGE_CODE):
        return sku.validity_text


def order_cancel(*, order_id: int, reason: str, skip_locked: bool = False) -> bool:
    """Cancel a pending order and release its codes. Returns False when it is not pending.

    Locks: Order (optionally skip locked: a notify paying it right now wins), CardCode.
    Idempotent: a cancelled or paid order is left alone.
    """
    with transaction.atomic():
        order = order_lock_for_update_by_id(order_id=order_id, skip_locked=skip_locked)
        if order is None or order.status != Order.Status.PENDING:
            return False
        released = card_codes_release(
            order_line_ids=list(order.lines.values_list("id", flat=True))
        )
        order.status = Order.Status.CANCELLED
        order.cancelled_at = timezone.now()
        order.save(update_fields=["status", "cancelled_at", "updated_at"])
        OrderEvent.objects.create(
            order=order,
            kind=OrderEvent.Kind.CANCELLED,
            detail={"reason": reason, "released_codes": released},
        )
    return True


def order_expire_unpaid(
    *, now: dt.datetime | None = None, limit: int = EXPIRE_BATCH
) -> int:
    """Cancel pending orders past their payment deadline; returns how many."""
    now = now or timezone.now()
    ids = list(
        Order.objects.filter(status=Order.Status.PENDING, expires_at__lte=now)
        .order_by("expires_at")
        .values_list("id", flat=True)[:limit]
    )
    cancelled = sum(
        order_cancel(order_id=order_id, reason="payment_timeout", skip_locked=True)
        for order_id in ids
    )
    if cancelled:
        logger.info("cancelled %d unpaid orders past their deadline", cancelled)
    return cancelled
