"""Supplier callbacks and what an operator can do to a top-up, through the same rules."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from decimal import Decimal
from functools import partial

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from config.lib.errors import DomainError
from fulfillment.models import (
    Supplier,
    SupplierAttempt,
    SupplierCallback,
    TopUp,
    TopUpEvent,
)
from fulfillment.services.topups import (
    REASON_OPERATOR,
    _apply_order,
    _topup_fail,
    _wait,
    topup_dispatch,
)
from fulfillment.suppliers import protocol as wire
from fulfillment.suppliers import supplier_client
from fulfillment.suppliers.base import CallbackRejected, SupplierOrder

logger = logging.getLogger(__name__)

CALLBACK_MAX_BYTES = 64 * 1024  # a callback is a few hundred bytes
CALLBACK_STORED_BYTES = 4 * 1024
AS = SupplierAttempt.Status


class TopUpActionError(DomainError):
    code = "topup_action_error"


@dataclass(frozen=True)
class CallbackResult:
    accepted: bool  # answer 200 "success": the supplier stops retrying
    outcome: str
    status_code: int


def supplier_callback_handle(
    *, supplier_name: str, body: bytes, remote_addr: str | None = None
) -> CallbackResult:
    """Record a supplier callback, verify it, and apply it once.

    1. Record it (bounded) in its own transaction, whatever it holds.
    2. Verify the signature with that supplier's secret; find the attempt.
    3. Lock Order → TopUp → attempt; a terminal attempt never changes (a
       contradicting callback is logged and ignored); otherwise apply the state.
    Idempotent: repeated callbacks find the attempt terminal and change nothing.
    """
    callback = SupplierCallback.objects.create(
        supplier_name=supplier_name[:50],
        body=body[:CALLBACK_STORED_BYTES]
        .decode("utf-8", errors="replace")
        .replace("\x00", ""),
        body_size=len(body),
        remote_addr=remote_addr,
    )
    CB = SupplierCallback.Outcome
    supplier = Supplier.objects.filter(name=supplier_name).first()
    if supplier is None:
        return _finish(callback, CB.UNKNOWN_SUPPLIER, accepted=False, status=404)
    callback.supplier = supplier
    if len(body) > CALLBACK_MAX_BYTES:
        return _finish(callback, CB.BAD_SIGNATURE, accepted=False, status=413)
    try:
        payload = supplier_client(supplier).callback_parse(body)
    except CallbackRejected:
        return _finish(callback, CB.BAD_SIGNATURE, accepted=False, status=400)
    callback.customer_order_no = payload.customer_order_no[:50]
    callback.state = payload.state[:20]
    attempt = (
        SupplierAttempt.objects.filter(
            supplier=supplier, customer_order_no=payload.customer_order_no
        )
        .select_related("topup__order_line")
        .first()
    )
    if attempt is None:
        if _restock_nudge(supplier=supplier, number=payload.customer_order_no):
            return _finish(callback, CB.APPLIED, accepted=True, status=200)
        return _finish(callback, CB.UNKNOWN_ORDER, accepted=False, status=404)
    if payload.state not in wire.TERMINAL_STATES:
        # A stale "processing" after the fact tells us nothing we act on.
        return _finish(callback, CB.DUPLICATE, accepted=True, status=200)

    from orders.locks import order_lock_for_update_by_id

    now = timezone.now()
    with transaction.atomic():
        order_lock_for_update_by_id(order_id=attempt.topup.order_line.order_id)
        topup = TopUp.objects.select_for_update().get(pk=attempt.topup_id)
        locked = SupplierAttempt.objects.select_for_update().get(pk=attempt.pk)
        TopUpEvent.objects.create(
            topup=topup,
            attempt=locked,
            supplier=supplier,
            kind=TopUpEvent.Kind.CALLBACK,
            method="callback",
            request=_redacted(body),
            ok=True,
            note=payload.state,
        )
        if not locked.is_open:
            same = (locked.status == AS.SUCCEEDED) == (payload.state == wire.SUCCESS)
            if not same:
                logger.warning(
                    "supplier %s callback for %s says %s but it is recorded %s; ignored",
                    supplier.name,
                    locked.customer_order_no,
                    payload.state,
                    locked.status,
                )
            return _finish(
                callback,
                CB.DUPLICATE if same else CB.IGNORED,
                accepted=True,
                status=200,
            )
        order = SupplierOrder(
            order_id=payload.order_id,
            customer_order_no=payload.customer_order_no,
            product_id=locked.product_id,
            state=payload.state,
            price=locked.unit_cost,
            buy_num=topup.quantity,
            fail_reason=payload.fail_reason,
        )
        if topup.status == TopUp.Status.WORKING:
            # A worker holds the lease: we decide now; its own record step will
            # find the attempt closed and let go.
            TopUp.objects.filter(pk=topup.pk).update(
                status=TopUp.Status.WAITING, lease_until=None
            )
            topup.status = TopUp.Status.WAITING
        _apply_order(topup, locked, order, now=now)
        return _finish(callback, CB.APPLIED, accepted=True, status=200)


def _restock_nudge(*, supplier: Supplier, number: str) -> bool:
    """A callback for one of our card restocks: look at it now, through its own query.

    The restock engine reads the cards with `order.get` (the callback carries
    none), so the callback only moves its next look forward. True when it is ours.
    """
    from fulfillment.models import CardRestock
    from fulfillment.services.restock import card_restock_dispatch

    restock = CardRestock.objects.filter(
        supplier=supplier, customer_order_no=number
    ).first()
    if restock is None:
        return False
    if restock.status in CardRestock.OPEN_STATUSES:
        CardRestock.objects.filter(pk=restock.pk).update(next_poll_at=timezone.now())
        card_restock_dispatch(restock_id=restock.pk)
    return True


def _redacted(body: bytes) -> dict[str, object]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: ("***" if k == "sign" else v) for k, v in data.items()}


def _finish(
    callback: SupplierCallback, outcome: str, *, accepted: bool, status: int
) -> CallbackResult:
    callback.outcome = outcome
    callback.save(update_fields=["outcome", "supplier", "customer_order_no", "state"])
    return CallbackResult(accepted=accepted, outcome=outcome, status_code=status)


def topup_retry_now(*, topup_id: int, actor: User) -> bool:
    """Look at a top-up now (query or place under its current number). False if finished."""
    now = timezone.now()
    with transaction.atomic():
        updated = TopUp.objects.filter(
            pk=topup_id, status__in=[TopUp.Status.PENDING, TopUp.Status.WAITING]
        ).update(next_poll_at=now, needs_attention=False, attention_note="")
        if not updated:
            return False
        _action_event(topup_id, actor, "retry now")
        transaction.on_commit(partial(topup_dispatch, topup_id=topup_id))
    return True


def topup_fail_over(*, topup_id: int, actor: User) -> bool:
    """Give up the current supplier and try the next one under a new number.

    Refused while the current attempt may still succeed at the supplier (placed,
    or its result unknown): failing over then could buy the top-up twice.
    Raises: TopUpActionError.
    """
    with transaction.atomic():
        topup = TopUp.objects.select_for_update().get(pk=topup_id)
        if not topup.is_open or topup.status == TopUp.Status.WORKING:
            raise TopUpActionError("该直充已完成或正在处理中")
        attempt = topup.attempts.filter(
            status__in=[AS.NEW, AS.UNKNOWN, AS.PLACED]
        ).first()
        if attempt is not None and attempt.status != AS.NEW:
            raise TopUpActionError(
                "当前供应商可能已受理该订单（已受理或结果未知），不能切换；请先查询结果"
            )
        if attempt is not None:
            SupplierAttempt.objects.filter(pk=attempt.pk).update(
                status=AS.REJECTED,
                last_error="operator fail-over",
                finished_at=timezone.now(),
            )
        _action_event(topup_id, actor, "fail over")
        now = timezone.now()
        _wait(topup, now, now)  # due at once: dispatched after commit
    return True


def topup_refund(*, topup_id: int, actor: User) -> bool:
    """Stop a top-up and refund its line. Refused while a supplier may still deliver it.

    Raises: TopUpActionError.
    """
    from orders.locks import order_lock_for_update_by_id

    topup = TopUp.objects.select_related("order_line").get(pk=topup_id)
    with transaction.atomic():
        order_lock_for_update_by_id(order_id=topup.order_line.order_id)
        topup = TopUp.objects.select_for_update().get(pk=topup_id)
        if not topup.is_open or topup.status == TopUp.Status.WORKING:
            raise TopUpActionError("该直充已完成或正在处理中")
        if topup.attempts.filter(status__in=[AS.UNKNOWN, AS.PLACED]).exists():
            raise TopUpActionError("供应商可能仍会完成这笔充值，不能退款；请先查询结果")
        topup.attempts.filter(status=AS.NEW).update(
            status=AS.REJECTED, last_error="operator refund"
        )
        _action_event(topup_id, actor, "refund")
        _topup_fail(
            topup, now=timezone.now(), reason=str(REASON_OPERATOR), code="operator"
        )
    return True


def _action_event(topup_id: int, actor: User, what: str) -> None:
    TopUpEvent.objects.create(
        topup_id=topup_id,
        kind=TopUpEvent.Kind.ACTION,
        note=f"{what} by {actor.pk}"[:200],
    )


def topup_cost(*, topup: TopUp) -> Decimal:
    """What the succeeded attempt cost us (unit cost × quantity); zero if none succeeded."""
    attempt = topup.attempts.filter(status=AS.SUCCEEDED).first()
    return attempt.unit_cost * topup.quantity if attempt else Decimal("0.00")


__all__ = [
    "CallbackResult",
    "TopUpActionError",
    "supplier_callback_handle",
    "topup_cost",
    "topup_fail_over",
    "topup_refund",
    "topup_retry_now",
]
