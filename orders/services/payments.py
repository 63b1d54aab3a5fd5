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
from django.db.models import F
from django.utils import timezone

from config.lib.errors import DomainError
from config.lib.tasks import enqueue_or_leave_for_sweep
from fulfillment.services import OutOfStockError, card_codes_reserve
from orders.gateways import NotifyRejected, ParsedNotify, gateway_get
from orders.gateways import sandbox as sandbox_gateway
from orders.locks import order_lock_for_update, refund_lock_for_update
from orders.models import (
    Order,
    OrderEmail,
    OrderEvent,
    Payment,
    PaymentNotify,
    Refund,
    SandboxTrade,
)
from orders.services.checkout import order_cancel
from orders.services.delivery import order_deliver
from orders.services.emails import order_email_queue

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
    # Under the order lock a repeated notify for this order cannot race us; the
    # unique (gateway, trade_no) key still refuses a trade replayed on another order.
    if Payment.objects.filter(gateway=gateway_name, trade_no=parsed.trade_no).exists():
        return Outcome.DUPLICATE
    payment = Payment.objects.create(
        order=order,
        gateway=gateway_name,
        trade_no=parsed.trade_no,
        amount=parsed.amount,
    )

    already_paid = order.status not in (Order.Status.PENDING, Order.Status.CANCELLED)
    order.paid_amount += parsed.amount  # safe: the row is locked
    if already_paid:
        order.save(update_fields=["paid_amount", "updated_at"])
        _refund_create(order=order, payment=payment, reason=REASON_DUPLICATE_PAYMENT)
        return Outcome.REFUNDED

    if order.status == Order.Status.CANCELLED and not _order_reopen(
        order=order, now=now
    ):
        order.status = Order.Status.PAID
        order.paid_at = now
        order.save(update_fields=["status", "paid_at", "paid_amount", "updated_at"])
        OrderEvent.objects.create(
            order=order, kind=OrderEvent.Kind.PAID, detail={"trade_no": parsed.trade_no}
        )
        _refund_create(order=order, payment=payment, reason=REASON_CANCELLED_NO_STOCK)
        return Outcome.REFUNDED

    order.status = Order.Status.PAID
    order.paid_at = now
    order.save(update_fields=["status", "paid_at", "paid_amount", "updated_at"])
    OrderEvent.objects.create(
        order=order, kind=OrderEvent.Kind.PAID, detail={"trade_no": parsed.trade_no}
    )
    order_deliver(order=order, now=now)
    return Outcome.PAID


def _order_reopen(*, order: Order, now: dt.datetime) -> bool:
    """Re-reserve a cancelled order's codes; all lines or none (savepoint)."""
    try:
        with transaction.atomic():
            for line in order.lines.select_related("sku"):
                card_codes_reserve(
                    sku=line.sku, order_line_id=line.id, quantity=line.quantity, now=now
                )
    except OutOfStockError:
        return False
    OrderEvent.objects.create(order=order, kind=OrderEvent.Kind.REOPENED)
    return True


def _refund_create(*, order: Order, payment: Payment, reason: str) -> Refund:
    from orders.tasks import refund_submit_task

    refund = Refund.objects.create(
        order=order, payment=payment, amount=payment.amount, reason=reason
    )
    transaction.on_commit(
        partial(enqueue_or_leave_for_sweep, refund_submit_task, refund_id=refund.id)
    )
    return refund


def refund_submit(*, refund_id: int) -> bool:
    """Ask the gateway for a pending refund and record the result.

    The refund number is the gateway's idempotency key, so a retry after a crash
    between the gateway call and our commit refunds nothing twice.
    Locks: Refund row (the sandbox gateway keeps its own state in this database).
    Returns False when the refund is not pending any more.
    """
    refund = Refund.objects.select_related("payment").filter(pk=refund_id).first()
    if refund is None or refund.status != Refund.Status.PENDING:
        return False
    gateway = gateway_get(refund.payment.gateway)
    assert gateway is not None  # noqa: S101
    gateway.refund(
        payment=refund.payment, amount=refund.amount, refund_no=refund.refund_no
    )
    with transaction.atomic():
        order = order_lock_for_update(number=refund.order.number)
        refund = refund_lock_for_update(refund_id=refund_id)
        if refund is None or order is None or refund.status != Refund.Status.PENDING:
            return False
        now = timezone.now()
        refund.status = Refund.Status.SUCCEEDED
        refund.completed_at = now
        refund.save(update_fields=["status", "completed_at"])
        Payment.objects.filter(id=refund.payment_id).update(
            status=Payment.Status.REFUNDED
        )
        order.refunded_amount = F("refunded_amount") + refund.amount
        fields = ["refunded_amount", "updated_at"]
        # Paid but never delivered (stock gone): the refund ends the order.
        if order.status == Order.Status.PAID:
            order.status = Order.Status.REFUNDED
            fields.append("status")
        order.save(update_fields=fields)
        OrderEvent.objects.create(
            order=order,
            kind=OrderEvent.Kind.REFUNDED,
            detail={
                "amount": str(refund.amount),
                "reason": refund.reason,
                "refund_no": refund.refund_no,
            },
        )
        order_email_queue(order=order, kind=OrderEmail.Kind.REFUNDED)
    return True


def refund_flush(*, now: dt.datetime | None = None) -> int:
    """Submit refunds still pending a minute after they were created (lost task)."""
    now = now or timezone.now()
    ids = list(
        Refund.objects.filter(
            status=Refund.Status.PENDING, created_at__lte=now - dt.timedelta(minutes=1)
        )
        .order_by("created_at")
        .values_list("id", flat=True)[:100]
    )
    done = 0
    for refund_id in ids:
        try:
            done += refund_submit(refund_id=refund_id)
        except DomainError:
            logger.warning(
                "refund %s refused by the gateway; needs an operator",
                refund_id,
                exc_info=True,
            )
    return done


def sandbox_trade_decide(*, token: str, pay: bool) -> SandboxTrade | None:
    """The shopper clicked pay or cancel on the sandbox page: settle the trade, send the notify.

    Claim idiom: waiting → paid/closed happens once; a double click finds it settled
    and sends nothing. The notify goes out after commit through Celery over HTTP,
    retried until our endpoint replies `success`, as a real gateway would.
    """
    from orders.tasks import sandbox_notify_deliver_task

    new_status = SandboxTrade.Status.PAID if pay else SandboxTrade.Status.CLOSED
    with transaction.atomic():
        claimed = SandboxTrade.objects.filter(
            token=token, status=SandboxTrade.Status.WAITING
        ).update(status=new_status)
        trade = SandboxTrade.objects.filter(token=token).first()
        if claimed == 1 and trade is not None:
            transaction.on_commit(
                partial(
                    sandbox_notify_deliver_task.delay,
                    trade_id=trade.id,
                    trade_status=sandbox_gateway.TRADE_SUCCESS
                    if pay
                    else sandbox_gateway.TRADE_CLOSED,
                )
            )
    return trade


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
