"""Refunds per line: request one, submit it to the gateway, retry a failed one.

A refund names its lines and amounts, who asked (system, operator, shopper) and
why. Requesting it takes the money out of the lines at once (their refunded
amounts can never pass what they cost, a database constraint) and ends the
lines that will not be delivered now. Submitting it is the claim idiom: one
conditional UPDATE pending → processing before the gateway is called, so two
workers never both call; a refusal ends in `failed`, which an operator sees in
admin and can retry; the periodic sweep never retries a failed refund by itself.
A gateway that only accepts the refund and settles it later (WeChat Pay) leaves
it `submitted` until its result notify or a query ends it
(orders/services/refund_results.py). The order's refunded amount grows only
when the gateway confirms, once (`refund_mark_succeeded`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Sequence
from decimal import Decimal
from functools import partial

import httpx
from django.db import transaction
from django.db.models import F, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from catalog.models import Sku
from config.lib.errors import DomainError
from config.lib.tasks import enqueue_or_leave_for_sweep
from fulfillment.services import card_codes_release
from orders.gateways import RefundState, gateway_for_payment
from orders.locks import order_lock_for_update_by_id, refund_lock_for_update
from orders.models import (
    Order,
    OrderEmail,
    OrderEvent,
    OrderLine,
    Payment,
    Refund,
    RefundLine,
)
from orders.models.orders import new_token
from orders.services.delivery import order_settle
from orders.services.emails import order_email_queue
from orders.signals import order_lines_refunded
from orders.transitions import lines_move

logger = logging.getLogger(__name__)

LS = OrderLine.Status
RS = Refund.Status
FLUSH_AFTER = dt.timedelta(minutes=1)  # give the queued task a head start
STALE_PROCESSING = dt.timedelta(minutes=10)  # a worker died between claim and record


class RefundError(DomainError):
    code = "refund_error"


def refund_request(
    *,
    order: Order,
    lines: Sequence[tuple[OrderLine, Decimal]],
    reason: str,
    actor_kind: str = Refund.ActorKind.SYSTEM,
    actor: User | None = None,
    now: dt.datetime | None = None,
) -> Refund:
    """Refund these amounts of these lines of a paid order; the gateway call follows after commit.

    1. Each amount is positive and within what the line has left to refund; the
       lines' refunded amounts grow by conditional UPDATE (never past the amount).
    2. Lines not yet delivered end `refunded` with the reason shown to the shopper;
       a delivered line ends `refunded` only when refunded in full (after-sales).
    3. The Refund and its RefundLines are written; the order is settled;
       `order_lines_refunded` is told in this transaction (commission clawback);
       the submit task is queued after commit (or left for the sweep).
    Runs with the Order row locked (the caller's transaction).
    Raises: RefundError (nothing is written).
    """
    now = now or timezone.now()
    payment = (
        Payment.objects.filter(order=order, status=Payment.Status.SUCCEEDED)
        .order_by("id")
        .first()
    )
    if payment is None or not lines:
        raise RefundError(_("该订单没有可退的付款"))
    total = sum((amount for _line, amount in lines), Decimal(0))
    already = Refund.objects.filter(payment=payment).aggregate(s=Sum("amount"))["s"]
    if total > payment.amount - (already or 0):
        raise RefundError(_("退款金额超过了实付金额"))
    for line, amount in lines:
        if line.order_id != order.id or line.is_bundle:
            raise RefundError(_("退款明细不属于该订单"))
        if amount <= 0 or amount > line.refundable_amount:
            raise RefundError(
                _("“%(line)s”最多可退 ¥%(max)s")
                % {"line": line.sku_name, "max": line.refundable_amount}
            )

    with transaction.atomic():
        for line, amount in lines:
            claimed = OrderLine.objects.filter(
                pk=line.pk, refunded_amount__lte=F("amount") - amount
            ).update(refunded_amount=F("refunded_amount") + amount, updated_at=now)
            if claimed != 1:
                raise RefundError(_("退款金额超过了该明细的金额"))
            line.refunded_amount += amount
        ending = [
            line
            for line, _amount in lines
            if line.status in (LS.RESERVED, LS.DELIVERING, LS.CANCELLED)
            or (line.status == LS.DELIVERED and line.refundable_amount == 0)
        ]
        # Codes held for lines that will never be delivered go back on sale.
        card_codes_release(
            order_line_ids=[
                line.id
                for line in ending
                if line.status in (LS.RESERVED, LS.CANCELLED)
                and line.delivery == Sku.Delivery.CARD_CODE
            ]
        )
        for status in {line.status for line in ending}:
            lines_move(
                [line for line in ending if line.status == status],
                LS.REFUNDED,
                now=now,
                status_reason=reason[:200],
            )
        refund = Refund.objects.create(
            order=order,
            payment=payment,
            amount=total,
            reason=reason[:200],
            actor_kind=actor_kind,
            actor=actor,
        )
        RefundLine.objects.bulk_create(
            RefundLine(refund=refund, line=line, amount=amount)
            for line, amount in lines
        )
        OrderEvent.objects.create(
            order=order,
            kind=OrderEvent.Kind.REFUND_REQUESTED,
            actor=actor,
            detail={
                "refund_no": refund.refund_no,
                "amount": str(total),
                "reason": reason[:200],
                "by": actor_kind,
                "lines": {str(line.id): str(amount) for line, amount in lines},
            },
        )
        order_settle(order=order, now=now)
        # Last, after CardCode: commission rows come after them in the lock order.
        order_lines_refunded.send(sender=OrderLine, refunds=list(lines), now=now)
        transaction.on_commit(partial(refund_dispatch, refund_id=refund.id))
    return refund


def refund_payment_whole(*, order: Order, payment: Payment, reason: str) -> Refund:
    """Return a whole payment that bought nothing (a second payment of a paid order).

    No line is involved: the order already has what it paid for once.
    """
    refund = Refund.objects.create(
        order=order, payment=payment, amount=payment.amount, reason=reason[:200]
    )
    OrderEvent.objects.create(
        order=order,
        kind=OrderEvent.Kind.REFUND_REQUESTED,
        detail={"refund_no": refund.refund_no, "amount": str(payment.amount)},
    )
    transaction.on_commit(partial(refund_dispatch, refund_id=refund.id))
    return refund


def refund_dispatch(*, refund_id: int) -> bool:
    """Hand a refund to Celery; a broker that is down leaves it for the sweep."""
    from orders.tasks import refund_submit_task

    return enqueue_or_leave_for_sweep(refund_submit_task, refund_id=refund_id)


def refund_submit(*, refund_id: int, now: dt.datetime | None = None) -> bool:
    """Ask the gateway for a refund and record the answer. True when it succeeded now.

    1. Claim: pending (or processing, stale) → processing, one conditional UPDATE.
    2. Outside any transaction: a refund claimed before (its worker died, or the
       gateway's answer was lost: the outcome is unknown) is first looked up
       with `refund_query`, and what the gateway already has is recorded rather
       than asked again; otherwise the gateway is asked. The refund number is
       its idempotency key, so even a repeated call refunds nothing twice.
    3. Money back now: `refund_mark_succeeded`. Accepted, settled later
       (WeChat Pay): `submitted`, the shopper sees the refund in progress.
    A refusal (DomainError from the gateway) ends the refund `failed`.
    Raises: httpx.HTTPError when the gateway could not be reached (the refund goes
    back to pending and the task retries).
    """
    now = now or timezone.now()
    claimed = Refund.objects.filter(
        Q(status=Refund.Status.PENDING)
        | Q(status=Refund.Status.PROCESSING, claimed_at__lte=now - STALE_PROCESSING),
        pk=refund_id,
    ).update(
        status=Refund.Status.PROCESSING, claimed_at=now, attempts=F("attempts") + 1
    )
    if claimed != 1:
        return False
    refund = Refund.objects.select_related("payment", "order").get(pk=refund_id)
    gateway = gateway_for_payment(refund.payment.gateway)
    state: RefundState | None = None
    try:
        if gateway is None:
            raise DomainError(f"gateway {refund.payment.gateway} is not available")
        if refund.attempts > 1:
            state = gateway.refund_query(
                payment=refund.payment, refund_no=refund.refund_no
            )
            if state is not None and state.closed:
                if not _refund_number_renewed(refund, closed=state):
                    return False
                state = None
        if state is None or state.status == "failed":
            state = gateway.refund(
                payment=refund.payment, amount=refund.amount, refund_no=refund.refund_no
            )
    except httpx.HTTPError as exc:
        Refund.objects.filter(pk=refund_id, status=RS.PROCESSING).update(
            status=RS.PENDING, last_error=_error_text(exc)
        )
        raise
    except DomainError as exc:
        refund_mark_failed(refund=refund, error=_error_text(exc))
        return False
    if state is not None and state.status == "processing":
        # Accepted: the gateway's result notify or the sweep settles it.
        Refund.objects.filter(pk=refund_id, status=RS.PROCESSING).update(
            status=RS.SUBMITTED, last_error="", checked_at=None
        )
        return False
    return refund_mark_succeeded(refund_id=refund_id, now=now)


def _refund_number_renewed(refund: Refund, *, closed: RefundState) -> bool:
    """The gateway closed this refund's number for good: the refund asks again
    under a new one (the old can never refund). Recorded on the order's timeline
    with the number it replaces. False when the refund moved meanwhile."""
    old = refund.refund_no
    with transaction.atomic():
        renewed = Refund.objects.filter(
            pk=refund.pk, status=RS.PROCESSING, refund_no=old
        ).update(refund_no=new_token())
        if not renewed:
            return False
        refund.refresh_from_db(fields=["refund_no"])
        OrderEvent.objects.create(
            order_id=refund.order_id,
            kind=OrderEvent.Kind.REFUND_REQUESTED,
            detail={
                "refund_no": refund.refund_no,
                "replaces": old,
                "gateway_state": closed.detail[:20],
            },
        )
    logger.info(
        "refund number %s closed by the gateway; asking again as %s",
        old,
        refund.refund_no,
    )
    return True


def _error_text(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


def refund_mark_failed(
    *, refund: Refund, error: str, expected: Collection[str] = (RS.PROCESSING,)
) -> bool:
    """The gateway refused or ended the refund: `failed`, for an operator to retry.

    Idempotent: only a refund in an `expected` status moves (conditional UPDATE),
    and only that move writes the event. True when it moved.
    """
    with transaction.atomic():
        updated = Refund.objects.filter(pk=refund.pk, status__in=expected).update(
            status=RS.FAILED, last_error=error[:200]
        )
        if updated:
            OrderEvent.objects.create(
                order_id=refund.order_id,
                kind=OrderEvent.Kind.REFUND_FAILED,
                detail={"refund_no": refund.refund_no, "error": error[:200]},
            )
    if updated:
        logger.warning(
            "refund %s refused or ended by the gateway; an operator must retry it: %s",
            refund.refund_no,
            error,
        )
    return bool(updated)


def refund_mark_succeeded(
    *,
    refund_id: int,
    now: dt.datetime,
    expected: Collection[str] = (RS.PROCESSING,),
) -> bool:
    """The gateway says the money is back: record it, exactly once. True when it moved.

    Lock Order → Refund; a refund in an `expected` status becomes succeeded,
    the order's refunded amount grows (a number computed under the lock), the
    payment is marked refunded when refunded in full, one event, one email.
    """
    with transaction.atomic():
        refund = Refund.objects.only("order_id").get(pk=refund_id)
        order = order_lock_for_update_by_id(order_id=refund.order_id)
        locked = refund_lock_for_update(refund_id=refund_id)
        if order is None or locked is None or locked.status not in expected:
            return False
        locked.status = Refund.Status.SUCCEEDED
        locked.completed_at = now
        locked.last_error = ""
        locked.save(update_fields=["status", "completed_at", "last_error"])
        refunded = order.refunded_amount + locked.amount
        Order.objects.filter(pk=order.pk).update(
            refunded_amount=refunded, updated_at=now
        )
        order.refunded_amount = refunded
        payment_refunded = Refund.objects.filter(
            payment_id=locked.payment_id, status=Refund.Status.SUCCEEDED
        ).aggregate(s=Sum("amount"))["s"]
        Payment.objects.filter(
            pk=locked.payment_id, amount__lte=payment_refunded or 0
        ).update(status=Payment.Status.REFUNDED)
        OrderEvent.objects.create(
            order=order,
            kind=OrderEvent.Kind.REFUNDED,
            detail={
                "amount": str(locked.amount),
                "reason": locked.reason,
                "refund_no": locked.refund_no,
            },
        )
        order_email_queue(
            order=order,
            kind=OrderEmail.Kind.REFUNDED,
            refund=locked,
            language=locked.language,
        )
    return True


def refund_retry(*, refund_id: int, actor: User) -> bool:
    """An operator sends a failed refund to the gateway again. Returns False if it was not failed."""
    with transaction.atomic():
        updated = Refund.objects.filter(pk=refund_id, status=RS.FAILED).update(
            status=RS.PENDING
        )
        if not updated:
            return False
        refund = Refund.objects.get(pk=refund_id)
        OrderEvent.objects.create(
            order_id=refund.order_id,
            kind=OrderEvent.Kind.REFUND_REQUESTED,
            actor=actor,
            detail={"refund_no": refund.refund_no, "retry": True},
        )
        transaction.on_commit(partial(refund_dispatch, refund_id=refund_id))
    return True


def refund_flush(*, now: dt.datetime | None = None) -> int:
    """Submit refunds whose task was lost (broker down) or whose worker died mid-call.

    Failed refunds are not touched: they wait for an operator.
    """
    now = now or timezone.now()
    ids = list(
        Refund.objects.filter(
            Q(status=Refund.Status.PENDING, created_at__lte=now - FLUSH_AFTER)
            | Q(status=Refund.Status.PROCESSING, claimed_at__lte=now - STALE_PROCESSING)
        )
        .order_by("created_at")
        .values_list("id", flat=True)[:100]
    )
    done = 0
    for refund_id in ids:
        try:
            done += refund_submit(refund_id=refund_id, now=now)
        except httpx.HTTPError:
            logger.warning("refund %s: gateway unreachable; later", refund_id)
    return done
