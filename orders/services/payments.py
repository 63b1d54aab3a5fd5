"""Payments: start one, take gateway notifies, refund.

A notify is recorded before anything else, in its own transaction, so even a
forged or broken one leaves a trace. Applying it locks the order; the unique
(gateway, trade_no) key makes a repeated notify a no-op.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal
from functools import partial

from django.db import transaction
from django.utils import timezone

from config.lib.db import row_insert_once
from config.lib.errors import DomainError
from fulfillment.services import OutOfStockError
from orders.gateways import NotifyRejected, ParsedNotify, gateway_get
from orders.gateways import sandbox as sandbox_gateway
from orders.locks import order_lock_for_update
from orders.models import (
    Order,
    OrderEvent,
    OrderLine,
    Payment,
    PaymentNotify,
    SandboxTrade,
)
from orders.services.checkout import lines_reserve, order_cancel
from orders.services.delivery import order_mark_paid
from orders.services.refunds import refund_payment_whole, refund_request
from orders.transitions import lines_move

logger = logging.getLogger(__name__)
Outcome = PaymentNotify.Outcome

REASON_CANCELLED_NO_STOCK = "paid after cancellation; stock gone"
REASON_DUPLICATE_PAYMENT = "order was already paid by another trade"


@dataclass(frozen=True)
class NotifyResult:
    accepted: bool  # reply the gateway's ack body; otherwise it retries
    outcome: str
    notify_id: int


def payment_start(
    *, order: Order, notify_url: str, return_url: str, gateway_name: str = "sandbox"
) -> str:
    """Open a payment for a pending order; returns the URL to send the shopper to.

    Raises: DomainError when the order cannot be paid any more.
    """
    if order.status != Order.Status.PENDING:
        raise DomainError("订单不是待支付状态")
    gateway = gateway_get(gateway_name)
    if gateway is None:
        raise DomainError(f"unknown gateway {gateway_name}")
    return gateway.payment_start(
        order=order, notify_url=notify_url, return_url=return_url
    )


def payment_notify_handle(
    *, gateway_name: str, fields: dict[str, str], remote_addr: str | None = None
) -> NotifyResult:
    """Record and act on one gateway notify.

    1. Record it as received (committed on its own).
    2. Verify signature and fields; find the order; check the amount.
    3. Closed trade: cancel the order if it is still pending.
    4. Paid trade: record the payment and deliver (or re-reserve a cancelled
       order, or refund when its stock is gone, or refund a second payment).
    Idempotent: on (gateway, trade_no).
    Raises: LookupError for an unknown gateway.
    """
    gateway = gateway_get(gateway_name)
    if gateway is None:
        raise LookupError(gateway_name)
    notify = PaymentNotify.objects.create(
        gateway=gateway_name,
        payload=fields,
        out_trade_no=fields.get("out_trade_no", "")[:64],
        trade_no=fields.get("trade_no", "")[:64],
        notify_id=fields.get("notify_id", "")[:64],
        remote_addr=remote_addr,
    )
    try:
        parsed = gateway.notify_parse(fields)
    except NotifyRejected as exc:
        return _finish(notify, exc.code, str(exc), accepted=False)

    outcome: str
    with transaction.atomic():
        # One locked read serves every branch: lock order Order → CardCode.
        order = order_lock_for_update(number=parsed.out_trade_no)
        if order is None:
            outcome, message, accepted = Outcome.UNKNOWN_ORDER, "no such order", False
        elif parsed.amount != order.total_amount:
            outcome, accepted = Outcome.AMOUNT_MISMATCH, False
            message = f"notified {parsed.amount}, order total {order.total_amount}"
        elif parsed.status == "closed":
            cancelled = order_cancel(order_id=order.id, reason="gateway_closed")
            outcome, message, accepted = (
                Outcome.CLOSED,
                ("cancelled" if cancelled else ""),
                True,
            )
        else:
            outcome = _payment_apply(
                order=order, gateway_name=gateway_name, parsed=parsed
            )
            message, accepted = "", True
    notify.order_id = order.id if order is not None else None
    return _finish(notify, outcome, message, accepted=accepted)


def _finish(
    notify: PaymentNotify, outcome: str, message: str, *, accepted: bool
) -> NotifyResult:
    notify.outcome = outcome
    notify.message = message[:200]
    notify.save(update_fields=["outcome", "message", "order"])
    if not accepted:
        logger.warning(
            "rejected %s notify %s for %s: %s",
            notify.gateway,
            notify.id,
            notify.out_trade_no,
            outcome,
        )
    return NotifyResult(accepted=accepted, outcome=outcome, notify_id=notify.id)


def _payment_apply(*, order: Order, gateway_name: str, parsed: ParsedNotify) -> str:
    """Record the payment and act on it. The caller holds the Order row lock.

    Returns the notify outcome; DUPLICATE when this trade was already recorded.
    """
    now = timezone.now()
    payment = Payment(
        order=order,
        gateway=gateway_name,
        trade_no=parsed.trade_no,
        amount=parsed.amount,
    )
    # A repeated notify is expected (gateways retry until acknowledged): the
    # unique (gateway, trade_no) key answers it, and refuses a trade replayed on
    # another order.
    if not row_insert_once(payment, unique=("gateway", "trade_no")):
        return Outcome.DUPLICATE
    if order.status not in (Order.Status.PENDING, Order.Status.CANCELLED):
        # Paid twice (two trades for one order): the second payment goes back whole.
        paid = order.paid_amount + parsed.amount
        Order.objects.filter(pk=order.pk).update(paid_amount=paid, updated_at=now)
        order.paid_amount = paid
        refund_payment_whole(
            order=order, payment=payment, reason=REASON_DUPLICATE_PAYMENT
        )
        return Outcome.REFUNDED

    if order.status == Order.Status.CANCELLED and not _order_reopen(
        order=order, now=now
    ):
        # Paid after cancellation and the stock is gone: paid, then every line back.
        order_mark_paid(order=order, payment=payment, now=now)
        refund_request(
            order=order,
            lines=[
                (line, line.amount)
                for line in order.lines.all()
                if not line.is_bundle and line.amount > 0
            ],
            reason=REASON_CANCELLED_NO_STOCK,
            now=now,
        )
        return Outcome.REFUNDED

    order_mark_paid(order=order, payment=payment, now=now)
    return Outcome.PAID


def _order_reopen(*, order: Order, now: dt.datetime) -> bool:
    """Re-reserve a cancelled order's lines; all lines or none (savepoint)."""
    lines = list(order.lines.select_related("sku"))
    try:
        with transaction.atomic():
            lines_reserve(lines, now=now)
            lines_move(
                [x for x in lines if x.status == OrderLine.Status.CANCELLED],
                OrderLine.Status.RESERVED,
                now=now,
            )
    except OutOfStockError:
        return False
    OrderEvent.objects.create(order=order, kind=OrderEvent.Kind.REOPENED)
    return True


def sandbox_trade_decide(*, trade: SandboxTrade, pay: bool) -> bool:
    """The shopper clicked pay or cancel on the sandbox page: settle the trade, send the notify.

    Claim idiom: waiting → paid/closed happens once; a double click finds it settled
    and sends nothing. The notify goes out after commit through Celery over HTTP,
    retried until our endpoint replies `success`, as a real gateway would.
    Returns True when this call settled it.
    """
    from orders.tasks import sandbox_notify_deliver_task

    new_status = SandboxTrade.Status.PAID if pay else SandboxTrade.Status.CLOSED
    now = timezone.now()
    # One statement, no transaction of its own: the task is queued only after
    # the claim has committed (autocommit), and only by the request that made it.
    claimed = SandboxTrade.objects.filter(
        pk=trade.pk, status=SandboxTrade.Status.WAITING
    ).update(status=new_status, updated_at=now)
    if claimed != 1:
        return False
    trade.status, trade.updated_at = new_status, now
    transaction.on_commit(
        partial(
            sandbox_notify_deliver_task.delay,
            trade_id=trade.id,
            trade_status=sandbox_gateway.TRADE_SUCCESS
            if pay
            else sandbox_gateway.TRADE_CLOSED,
        )
    )
    return True


def sandbox_notify_deliver(*, trade_id: int, trade_status: str) -> bool:
    """POST the signed notify to the trade's notify URL; True when it answered `success`."""
    from config.lib.http import http_post_form

    trade = SandboxTrade.objects.get(id=trade_id)
    fields = sandbox_gateway.notify_fields(
        out_trade_no=trade.out_trade_no,
        trade_no=trade.trade_no,
        amount=Decimal(trade.total_amount),
        status=trade_status,
    )
    response = http_post_form(trade.notify_url, fields)
    return response.status_code == 200 and response.text.strip() == "success"
