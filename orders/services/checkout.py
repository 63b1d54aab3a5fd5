"""Checkout: place an order and reserve its stock; cancel and expire unpaid orders."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from functools import partial
from typing import Any

import httpx
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import User
from catalog import cache as catalog_cache
from catalog.models import Sku
from config.lib.db import execute
from config.lib.errors import DomainError
from fulfillment.selectors import topup_capacity_by_sku
from fulfillment.services import (
    OutOfStockError,
    card_codes_release,
)
from fulfillment.soldout import sold_out_note
from orders.gateways import gateways_all
from orders.guest import Owner, guest_keys
from orders.guest import email_normalize as guest_email_normalize
from orders.locks import (
    guest_lock_for_update,
    order_lock_for_update_by_id,
    user_lock_for_update,
)
from orders.models import Order, OrderEvent, OrderLine
from orders.models.orders import new_order_number
from orders.pricing import Quote, order_quote
from orders.services.order_write import (
    lines_reserve as lines_reserve,  # re-exported: payments.py takes it from here
)
from orders.services.order_write import order_write, table_quoted
from orders.services.soldout import placed_remember, sold_out_or_placed
from orders.transitions import lines_move, order_move
from risk.models import RiskEvaluation

logger = logging.getLogger(__name__)

EXPIRE_BATCH = 500


class CheckoutError(DomainError):
    code = "checkout_error"


class GuestEmailError(CheckoutError):
    """A guest checkout without an email (the view's form asks for it first)."""

    code = "guest_email"
    field = "email"


class SkuUnavailableError(CheckoutError):
    code = "sku_unavailable"


class TooManyUnpaidOrdersError(CheckoutError):
    code = "too_many_unpaid_orders"


class CheckoutTokenReusedError(CheckoutError):
    code = "token_reused"


ERR_SOLD_OUT = gettext_lazy("%(sku)s 已售罄")
ERR_GUEST_EMAIL = gettext_lazy("请填写接收订单通知的邮箱")
ERR_TOPUP_UNAVAILABLE = gettext_lazy("充值渠道暂时无法充值，请稍后再试")
ERR_TOKEN_REUSED = gettext_lazy(
    "这个下单页面已经提交过另一笔订单（商品、数量或充值账号不同）。请返回商品页重新下单。"
)


_PLACED = OrderEvent.Kind.PLACED.value
_PENDING = Order.Status.PENDING.value


def order_place(
    *,
    user: User | None,
    sku_code: str,
    quantity: int,
    recharge_account: str = "",
    client_token: str = "",
    ip_address: str | None = None,
    device_id: str = "",
    now: dt.datetime | None = None,
    unit_price: Decimal | None = None,
    guest_email: str = "",
    guest_password: str = "",
    sku: Sku | None = None,
    sold_out_checked: bool = False,
    partnered: bool = False,
    risk_evaluation: RiskEvaluation | None = None,
) -> Order:
    """Create an order with its lines and reserve their stock in one transaction.

    `partnered`: the caller keeps rows of its own about the order (`Order.partnered`).

    `risk_evaluation`: the checkout's evaluation, not written yet
    (`risk_assess(defer=True)`). On PostgreSQL an order of one line writes it,
    linked to the new order, in the order's own statement, and gives it its pk
    once the transaction is over; otherwise (a double click's order, a bundle,
    an error, another database) it is left unwritten for the caller
    (`risk_checkout_confirm` or `risk_checkout_abandon`).

    `sku`: the SKU `sku_code` names, as the caller read it on sale in this request
    (`catalog_cache.sku_on_sale`); read here when not given. `sold_out_checked`:
    the caller has just looked at the sold-out flag (`checkout_known_sold_out`)
    and was not answered "sold out": it is not read again (the reservation
    decides, as it does when the flag goes up in between).

    `user` None: a guest order (orders/guest.py), for `guest_email`, opened later
    with `guest_password` (hashed here, before any lock: hashing is slow) or its
    access link. A guest's checkouts are serialised and limited per email
    instead of per account: a transaction-scoped advisory lock on the email
    (PostgreSQL), and at most ORDER_MAX_UNPAID_PER_USER unpaid guest orders per
    email; the double-click token is looked up per email too.

    1. The SKU must be on sale now; `order_quote` checks quantity and account and
       prices every line (a bundle's parts get their shares).
    2. Lock the shopper's row: the same client_token returns the order it already
       made (double click) when it asked for the same thing, and is refused when
       it asked for something else; no shopper holds more than
       ORDER_MAX_UNPAID_PER_USER unpaid orders.
    3. Create the order and its lines, then take free codes for every card-code
       line with SKIP LOCKED. Top-ups reserve nothing: they are placed after payment.
    Raises: SkuUnavailableError, QuoteError, CheckoutTokenReusedError,
        TooManyUnpaidOrdersError, OutOfStockError (nothing is created).
    Locks: User (a guest: an advisory lock on the email), then CardCode (skip locked).
    Idempotent: on client_token.
    """
    now = now or timezone.now()
    if sku is None or sku.code != sku_code:
        sku = catalog_cache.sku_on_sale(code=sku_code, now=now)
    if sku is None:
        raise SkuUnavailableError(_("该商品当前不在售"))
    email = guest_email_normalize(guest_email) if user is None else ""
    if user is None and not email:
        raise GuestEmailError(str(ERR_GUEST_EMAIL))
    owner = Owner(user.pk, "") if user is not None else Owner(None, email)
    # unit_price: a price settled by the caller (a partner's tier price).
    quote = order_quote(
        sku=sku,
        quantity=quantity,
        recharge_account=recharge_account,
        unit_price=unit_price,
    )
    # A rush's usual answer, from one cache read: no lock, no write (soldout.py).
    # A double click whose first click took the last code still finds its order.
    if sku.delivery == Sku.Delivery.CARD_CODE and not sold_out_checked:
        sold_out, placed_id = sold_out_or_placed(
            sku_id=sku.id, user_id=owner.key, client_token=client_token
        )
        if sold_out:
            placed = (
                Order.objects.filter(pk=placed_id, **owner.filter()).first()
                if placed_id
                else None
            )
            if placed is not None and _same_request(placed, quote):
                return placed
            raise OutOfStockError(
                str(ERR_SOLD_OUT) % {"sku": sku.name}, sku_id=sku.id, available=0
            )
    topups = [x.sku.id for x in quote.leaves if x.delivery == Sku.Delivery.DIRECT_TOPUP]
    # Top-ups reserve nothing, so this is their stock check: a supplier must be
    # able to take them now, or the shopper would pay only to be refunded.
    if topups and not all(topup_capacity_by_sku(sku_ids=topups).values()):
        raise SkuUnavailableError(str(ERR_TOPUP_UNAVAILABLE))

    # A guest order's keys: hashes only, the slow one before any lock.
    number = new_order_number()
    keys = (
        guest_keys(number=number, lookup_password=guest_password)
        if user is None
        else {}
    )
    evaluation_id: int | None = None
    try:
        with transaction.atomic():
            if user is not None:
                user_lock_for_update(user_id=user.pk)
            else:
                guest_lock_for_update(email=email)
            # One read answers both questions: the order this token made, and
            # how many unpaid orders the shopper holds (at most the limit).
            held = _orders_unpaid_or_token(
                owner=owner, client_token=client_token, now=now
            )
            existing_id = next(
                (pk for pk, token in held if client_token and token == client_token),
                None,
            )
            if existing_id is not None:
                existing = Order.objects.get(pk=existing_id)
                if not _same_request(existing, quote):
                    raise CheckoutTokenReusedError(str(ERR_TOKEN_REUSED))
                return existing
            unpaid = len(held)
            if unpaid >= settings.ORDER_MAX_UNPAID_PER_USER:
                raise TooManyUnpaidOrdersError(
                    _("您已有 %(n)d 笔未支付订单，请先支付或等待其过期后再下单")
                    % {"n": unpaid}
                )
            # Values, not models: the order is built once it is written
            # (config/lib/db_row.py), the line and event never are.
            order, evaluation_id = order_write(
                order={
                    "number": number,
                    "user_id": owner.user_id,
                    "email": getattr(user, "email", "") if user is not None else email,
                    **keys,
                    "total_amount": quote.total,
                    "client_token": client_token,
                    "ip_address": ip_address,
                    "device_id": device_id,
                    "partnered": partnered,
                    "expires_at": now
                    + dt.timedelta(minutes=settings.ORDER_PAYMENT_TIMEOUT_MINUTES),
                },
                quote=quote,
                placed={
                    "kind": _PLACED,
                    "actor_id": owner.user_id,
                    "detail": {
                        "sku": sku.code,
                        "quantity": quantity,
                        "total": str(quote.total),
                    },
                },
                now=now,
                evaluation=risk_evaluation,
            )
            if client_token:
                transaction.on_commit(
                    partial(placed_remember, owner.key, client_token, order.pk)
                )
    except OutOfStockError as exc:
        if exc.available == 0:  # after the rollback: nothing was written
            sold_out_note(exc.sku_id)
        raise
    if risk_evaluation is not None and evaluation_id is not None:
        # Only now: had the transaction rolled back, the caller would write it.
        risk_evaluation.order_id = order.pk
        risk_evaluation.pk = evaluation_id
        risk_evaluation._state.adding = False
        risk_evaluation._state.db = DEFAULT_DB_ALIAS
    return order


def _orders_unpaid_or_token(
    *, owner: Owner, client_token: str, now: dt.datetime
) -> list[tuple[int, str]]:
    """(id, client_token) of the shopper's unpaid orders still payable, plus the
    one `client_token` made. One plain statement: it runs on every checkout."""
    who = (
        '"user_id" = %s'
        if owner.user_id is not None
        else '"user_id" IS NULL AND "email" = %s'
    )
    sql = (
        f'SELECT "id", "client_token" FROM {table_quoted(Order)} WHERE {who}'  # noqa: S608
        ' AND (("status" = %s AND "expires_at" > %s)'
    )
    db = connections[DEFAULT_DB_ALIAS]  # once: each `connection.` is a look-up
    params: list[Any] = [
        owner.user_id if owner.user_id is not None else owner.email,
        _PENDING,
        db.ops.adapt_datetimefield_value(now),
    ]
    if client_token:
        sql += ' OR "client_token" = %s'
        params += (client_token,)
    with db.cursor() as cursor:
        execute(cursor, sql + ")", params)
        return [(row[0], row[1]) for row in cursor.fetchall()]


def _same_request(order: Order, quote: Quote) -> bool:
    top = order.lines.filter(parent__isnull=True).select_related("sku").first()
    if top is None:
        return False
    account = top.recharge_account or (
        order.lines.exclude(recharge_account="")
        .values_list("recharge_account", flat=True)
        .first()
        or ""
    )
    return quote.matches(
        sku_code=top.sku.code, quantity=top.quantity, recharge_account=account
    )


def order_cancel(*, order_id: int, reason: str, skip_locked: bool = False) -> bool:
    """Cancel a pending order and release its codes. Returns False when it is not pending.

    Locks: Order (optionally skip locked: a notify paying it right now wins), CardCode.
    Idempotent: a cancelled or paid order is left alone.
    """
    with transaction.atomic():
        order = order_lock_for_update_by_id(order_id=order_id, skip_locked=skip_locked)
        if order is None or order.status != Order.Status.PENDING:
            return False
        now = timezone.now()
        lines = list(order.lines.all())
        released = card_codes_release(order_line_ids=[line.id for line in lines])
        lines_move(
            [line for line in lines if line.status == OrderLine.Status.RESERVED],
            OrderLine.Status.CANCELLED,
            now=now,
        )
        order_move(order, Order.Status.CANCELLED, now=now, cancelled_at=now)
        OrderEvent.objects.create(
            order=order,
            kind=OrderEvent.Kind.CANCELLED,
            detail={"reason": reason, "released_codes": released},
        )
        # After commit: a real gateway's close is a network call.
        transaction.on_commit(partial(payment_close, out_trade_no=order.number))
    return True


def payment_close(*, out_trade_no: str) -> None:
    """Close the cancelled order's open trades at every gateway, so it cannot be paid.

    A gateway that cannot be reached is logged: a payment that lands anyway is
    still honoured (re-reserved or refunded, SPEC §3).
    """
    for gateway in gateways_all():
        try:
            gateway.close(out_trade_no=out_trade_no)
        except (DomainError, httpx.HTTPError):
            logger.warning(
                "could not close %s trades of %s",
                gateway.name,
                out_trade_no,
                exc_info=True,
            )


def order_expire_unpaid(
    *, now: dt.datetime | None = None, limit: int = EXPIRE_BATCH
) -> int:
    """Cancel pending orders past their payment deadline; returns how many.

    Each order's trades are looked up first (outside any transaction): one
    paid but never notified is honoured instead of cancelled.
    """
    # Imported here: the notify path (payments) cancels orders through this module.
    from orders.services.notify_sweep import payment_lost_notify_check

    now = now or timezone.now()
    due = list(
        Order.objects.filter(status=Order.Status.PENDING, expires_at__lte=now)
        .order_by("expires_at")
        .values_list("id", "number")[:limit]
    )
    cancelled = sum(
        order_cancel(order_id=order_id, reason="payment_timeout", skip_locked=True)
        for order_id, number in due
        if not payment_lost_notify_check(out_trade_no=number)
    )
    if cancelled:
        logger.info("cancelled %d unpaid orders past their deadline", cancelled)
    return cancelled
