"""How a refund the gateway accepted but has not settled ends: notify or query.

WeChat Pay answers a refund request PROCESSING and settles it later (seconds for
change, days for a bank card); the refund waits `submitted`, and the shopper
sees it in progress. It ends when either comes first:

- the gateway's refund result notify (`refund_notify_handle`), recorded like a
  payment notify (a PaymentNotify row, bounded, its outcome written in the
  transaction that applies it); forged, replayed or foreign ones change nothing;
- the periodic sweep (`refund_gateway_sweep`), which asks `refund_query`.

Both end in `refund_result_apply`: the conditional moves of refunds.py, so a
result applied twice (a notify and the sweep, a notify and its retry) changes
nothing the second time. No gateway call happens inside a transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Literal

import httpx
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from config.lib.db import rows_update
from config.lib.errors import DomainError
from orders.gateways import gateway_for_payment, gateway_get
from orders.gateways.base import ParsedRefundNotify, RefundNotifying
from orders.models import PaymentNotify, Refund
from orders.services import notify_intake
from orders.services.payments import NotifyResult
from orders.services.refunds import (
    refund_dispatch,
    refund_mark_failed,
    refund_mark_succeeded,
)

logger = logging.getLogger(__name__)

RS = Refund.Status
Outcome = PaymentNotify.Outcome
# The notify usually settles a refund first; the sweep asks about the others.
SETTLE_GRACE = dt.timedelta(minutes=1)
RECHECK_EVERY = dt.timedelta(minutes=5)
SWEEP_BATCH = 100
# A success the gateway reports is recorded even for a refund we thought failed:
# WeChat settles an ABNORMAL refund once the merchant resolves it on its platform.
SUCCEEDS_FROM = (RS.PENDING, RS.PROCESSING, RS.SUBMITTED, RS.FAILED)
FAILS_FROM = (RS.PENDING, RS.PROCESSING, RS.SUBMITTED)


def refund_result_apply(
    *,
    refund: Refund,
    status: Literal["succeeded", "failed"],
    detail: str,
    now: dt.datetime | None = None,
) -> bool:
    """Record how the gateway ended a refund. True when this call changed it.

    succeeded: lines were settled when it was requested; now the order's
    refunded amount, the payment, the event and the shopper's email, once.
    failed: visible in admin, where an operator may retry it.
    Idempotent: conditional moves under the Order → Refund locks.
    """
    now = now or timezone.now()
    if status == "succeeded":
        return refund_mark_succeeded(
            refund_id=refund.pk, now=now, expected=SUCCEEDS_FROM
        )
    return refund_mark_failed(
        refund=refund,
        error=f"the gateway ended the refund {detail[:40]}",
        expected=FAILS_FROM,
    )


def refund_gateway_sweep(*, now: dt.datetime | None = None) -> int:
    """Ask the gateways about refunds they accepted and have not settled. Returns how many ended.

    1. Up to SWEEP_BATCH submitted refunds accepted over SETTLE_GRACE ago, the
       least recently asked first; each is marked asked by a conditional UPDATE
       (two sweeps never ask about the same refund at once).
    2. `refund_query` outside any transaction; succeeded / failed is applied
       (`refund_result_apply`), processing waits for the next run.
    3. A refund the gateway says it never saw goes back to pending and is
       submitted again under the same number (idempotent at the gateway).
    Transport errors and refusals are logged; the next run asks again.
    """
    now = now or timezone.now()
    due = list(
        Refund.objects.filter(status=RS.SUBMITTED, claimed_at__lte=now - SETTLE_GRACE)
        .filter(Q(checked_at__isnull=True) | Q(checked_at__lte=now - RECHECK_EVERY))
        .order_by(F("checked_at").asc(nulls_first=True), "id")
        .values_list("id", "checked_at")[:SWEEP_BATCH]
    )
    ended = 0
    for refund_id, checked_at in due:
        taken = Refund.objects.filter(
            pk=refund_id, status=RS.SUBMITTED, checked_at=checked_at
        ).update(checked_at=now)
        if taken:
            ended += _refund_check(refund_id=refund_id, now=now)
    return ended


def _refund_check(*, refund_id: int, now: dt.datetime) -> bool:
    refund = Refund.objects.select_related("payment").get(pk=refund_id)
    gateway = gateway_for_payment(refund.payment.gateway)
    if gateway is None:
        logger.warning("refund %s: gateway is off; not asked", refund.refund_no)
        return False
    try:
        state = gateway.refund_query(payment=refund.payment, refund_no=refund.refund_no)
    except (httpx.HTTPError, DomainError):
        logger.warning("refund %s: query failed; next run", refund.refund_no)
        return False
    if state is None:
        moved = Refund.objects.filter(pk=refund_id, status=RS.SUBMITTED).update(
            status=RS.PENDING, last_error="the gateway has no such refund; sent again"
        )
        if moved:
            refund_dispatch(refund_id=refund_id)
        return False
    if state.status == "processing":
        return False
    return refund_result_apply(
        refund=refund, status=state.status, detail=state.detail, now=now
    )


def refund_notify_handle(
    *,
    gateway_name: str,
    fields: dict[str, str],
    remote_addr: str | None = None,
    body: bytes | None = None,
) -> NotifyResult:
    """Record and act on a gateway's refund result notify.

    1. Recorded as received first (committed on its own, bounded as payment
       notifies are); a field no gateway sends records it `invalid` at once.
    2. Verified and decrypted by the gateway (forged, replayed or foreign:
       rejected); it must name one of our refunds of that gateway's trade, for
       its amount.
    3. Applied (`refund_result_apply`) with the outcome written in the same
       transaction: `refund_succeeded` / `refund_failed`, or `duplicate` when
       the refund already ended (a retry, a replay, the sweep came first).
    Raises: LookupError for a gateway that is off or sends no refund notifies.
    """
    gateway = gateway_get(gateway_name)
    if not isinstance(gateway, RefundNotifying):
        raise LookupError(gateway_name)
    notify, parsed = notify_intake.notify_record(
        gateway_name=gateway_name,
        fields=fields,
        remote_addr=remote_addr,
        body=body,
        columns=("notify_id",),
        parse=gateway.refund_notify_parse,
    )
    if parsed is None:
        return _finish(notify, accepted=False)
    refund = (
        Refund.objects.select_related("payment")
        .filter(refund_no=parsed.refund_no)
        .first()
    )
    if refund is None:
        message = f"no refund {parsed.refund_no[:40]}"
        _record(notify, outcome=Outcome.UNKNOWN_REFUND, message=message, parsed=parsed)
        return _finish(notify, accepted=False)
    rejection = _rejection(parsed, refund=refund, gateway_name=gateway_name)
    if rejection is not None:
        _record(notify, outcome=rejection[0], message=rejection[1], parsed=parsed)
        return _finish(notify, accepted=False)
    with transaction.atomic():
        changed = refund_result_apply(
            refund=refund, status=parsed.status, detail=parsed.detail
        )
        if changed:
            outcome = (
                Outcome.REFUND_SUCCEEDED
                if parsed.status == "succeeded"
                else Outcome.REFUND_FAILED
            )
            message = f"refund {refund.refund_no}: {parsed.detail}"
        else:
            outcome = Outcome.DUPLICATE
            status = Refund.objects.values_list("status", flat=True).get(pk=refund.pk)
            message = f"refund {refund.refund_no} already {status}: {parsed.detail}"
        _record(
            notify,
            outcome=outcome,
            message=message,
            parsed=parsed,
            order_id=refund.order_id,
        )
    return _finish(notify, accepted=True)


def _rejection(
    parsed: ParsedRefundNotify, *, refund: Refund, gateway_name: str
) -> tuple[str, str] | None:
    """Why a verified notify does not fit this refund of ours; None when it does."""
    payment = refund.payment
    if payment.gateway != gateway_name or payment.trade_no != parsed.trade_no:
        return Outcome.INVALID, f"refund {refund.refund_no} is not of that trade"
    if parsed.amount != refund.amount:
        return (
            Outcome.AMOUNT_MISMATCH,
            f"notified {parsed.amount}, refund {refund.amount}",
        )
    return None


def _record(
    notify: PaymentNotify,
    *,
    outcome: str,
    message: str,
    parsed: ParsedRefundNotify | None = None,
    order_id: int | None = None,
) -> None:
    """Write the notify's outcome and, once decrypted, the trade it names."""
    changes: dict[str, object] = {"outcome": outcome, "message": message[:200]}
    if parsed is not None:
        changes["out_trade_no"] = notify_intake.storable(parsed.out_trade_no)[:64]
        changes["trade_no"] = notify_intake.storable(parsed.trade_no)[:64]
    if order_id is not None:
        changes["order_id"] = order_id
    for name, value in changes.items():
        setattr(notify, name, value)
    rows_update(PaymentNotify, {"pk": notify.pk}, **changes)


def _finish(notify: PaymentNotify, *, accepted: bool) -> NotifyResult:
    if not accepted:
        logger.warning(
            "rejected %s refund notify %s: %s",
            notify.gateway,
            notify.id,
            notify.outcome,
        )
    return NotifyResult(accepted=accepted, outcome=notify.outcome, notify_id=notify.id)
