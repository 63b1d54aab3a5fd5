"""Top-ups, exactly once: claim, commit, call the supplier, lock, record.

A paid top-up line gets a TopUp row in the paying transaction. Workers then
move it one step at a time (`topup_advance`), each step in three phases:

1. Claim (short transaction): take the top-up's lease with a conditional UPDATE,
   pick or create the open SupplierAttempt (its number fixed before any call),
   and, before placing, mark the attempt `unknown`: if this worker dies during
   the call, whoever comes next queries the number before placing again.
2. Call the supplier, outside any transaction.
3. Record (Order → TopUp → attempt locks): store the redacted exchanges, apply
   the answer as the protocol's error table says, and schedule the next step
   in `next_poll_at` (beat sweeps it) or deliver / refund the order line.

Callbacks apply the same answers through `_apply_order`. A terminal attempt
never changes again; a contradicting callback or a stale reply is ignored.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Literal

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from config.lib.tasks import enqueue_or_leave_for_sweep
from fulfillment.models import (
    SupplierAttempt,
    TopUp,
    TopUpEvent,
)
from fulfillment.selectors import supplier_products_for_sku
from fulfillment.services.supplier_calls import (
    RETRY_SAME_NUMBER,
    CallResult,
    backoff,
    lease,
    notify_url,
    placement_grace,
)
from fulfillment.suppliers import protocol as wire
from fulfillment.suppliers import supplier_client
from fulfillment.suppliers.base import Exchange, SupplierError, SupplierOrder

if TYPE_CHECKING:
    from orders.models import OrderLine

logger = logging.getLogger(__name__)

TS = TopUp.Status
AS = SupplierAttempt.Status
Action = Literal["place", "query", "give_up"]

# Words for the shopper when a top-up comes back as money (stored on the line).
REASON_BAD_ACCOUNT = _(
    "充值账号无效，充值渠道拒绝了这笔充值；款项已原路退回，请核对账号后重新下单。"
)
REASON_NO_SUPPLIER = _("充值渠道暂时无法完成这笔充值；款项已原路退回。")
REASON_OPERATOR = _("客服已为您取消这笔充值并退款。")


@dataclass
class Plan:
    topup_id: int
    order_id: int
    line_id: int
    lease_until: dt.datetime
    action: Action
    attempt_id: int | None = None


def topups_start_for_lines(
    *, lines: Sequence[OrderLine], now: dt.datetime
) -> list[TopUp]:
    """Record the supplier work of paid top-up lines; the worker starts after commit.

    Runs in the paying transaction (Order row locked). The first attempt, and so
    its number, is fixed by the worker's claim, still before any call.
    Idempotent: a line that already has a top-up keeps it.
    """
    wanted = list(lines)
    existing = set(
        TopUp.objects.filter(order_line__in=wanted).values_list(
            "order_line_id", flat=True
        )
    )
    deadline = now + dt.timedelta(minutes=settings.TOPUP_DEADLINE_MINUTES)
    topups = TopUp.objects.bulk_create(
        TopUp(
            order_line=line,
            sku_id=line.sku_id,
            recharge_account=line.recharge_account,
            quantity=line.quantity,
            # If the task is lost (broker down), the sweep starts it a lease later.
            next_poll_at=now + lease(),
            deadline_at=deadline,
        )
        for line in wanted
        if line.id not in existing
    )
    TopUpEvent.objects.bulk_create(
        TopUpEvent(topup=t, kind=TopUpEvent.Kind.CREATED, note="paid") for t in topups
    )
    for topup in topups:
        transaction.on_commit(partial(topup_dispatch, topup_id=topup.id))
    return topups


def topup_dispatch(*, topup_id: int) -> bool:
    """Hand a top-up step to the worker queue; a broker outage leaves it to the sweep."""
    from fulfillment.tasks import topup_advance_task

    return enqueue_or_leave_for_sweep(topup_advance_task, topup_id=topup_id)


def topup_advance(*, topup_id: int, now: dt.datetime | None = None) -> str:
    """Take one step of a top-up. Returns a word for logs and tests.

    Idempotent: a top-up another worker holds, or one already finished, is left
    alone ("busy"); nothing is placed twice under different numbers unless the
    supplier definitively refused the first.
    """
    now = now or timezone.now()
    plan = _claim(topup_id=topup_id, now=now)
    if plan is None:
        return "busy"
    if plan.action == "give_up":
        return _record(plan, CallResult(), now=timezone.now())
    result = _call(plan)
    return _record(plan, result, now=timezone.now())


def _claim(*, topup_id: int, now: dt.datetime) -> Plan | None:
    lease_until = now + lease()
    with transaction.atomic():
        claimed = (
            TopUp.objects.filter(
                pk=topup_id, status__in=[TS.PENDING, TS.WAITING, TS.WORKING]
            )
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .update(status=TS.WORKING, lease_until=lease_until, steps=F("steps") + 1)
        )
        if claimed != 1:
            return None
        topup = TopUp.objects.select_related("order_line").get(pk=topup_id)
        plan = Plan(
            topup_id=topup.id,
            order_id=topup.order_line.order_id,
            line_id=topup.order_line_id,
            lease_until=lease_until,
            action="query",
        )
        attempt = topup.attempts.filter(
            status__in=[AS.NEW, AS.UNKNOWN, AS.PLACED]
        ).first()
        if attempt is None:
            attempt = _attempt_next(topup=topup, now=now)
            if attempt is None:
                plan.action = "give_up"
                return plan
        plan.attempt_id = attempt.id
        if attempt.status == AS.NEW:
            # Marked before the call: a worker dying mid-call leaves an attempt
            # that the next one queries before it places again.
            plan.action = "place"
            SupplierAttempt.objects.filter(pk=attempt.pk).update(
                status=AS.UNKNOWN,
                placements=F("placements") + 1,
                placement_deadline=attempt.placement_deadline
                or now + placement_grace(),
            )
        else:
            SupplierAttempt.objects.filter(pk=attempt.pk).update(
                queries=F("queries") + 1
            )
    return plan


def _attempt_next(*, topup: TopUp, now: dt.datetime) -> SupplierAttempt | None:
    """The next supplier mapping not yet tried for this top-up, with a new fixed number."""
    tried = set(topup.attempts.values_list("supplier_product_id", flat=True))
    candidates = [
        m for m in supplier_products_for_sku(sku_id=topup.sku_id) if m.id not in tried
    ]
    if not candidates:
        return None
    mapping = candidates[0]
    sequence = len(tried) + 1
    return SupplierAttempt.objects.create(
        topup=topup,
        supplier=mapping.supplier,
        supplier_product=mapping,
        customer_order_no=f"KQT{topup.id}-{sequence}-{secrets.token_hex(4)}",
        product_id=mapping.product_id,
        unit_cost=mapping.cost,
    )


def _call(plan: Plan) -> CallResult:
    """Talk to the supplier. No transaction is open here."""
    assert plan.attempt_id is not None  # noqa: S101 (place and query name an attempt)
    attempt = SupplierAttempt.objects.select_related("supplier", "topup").get(
        pk=plan.attempt_id
    )
    result = CallResult()
    client = supplier_client(attempt.supplier, record=result.exchanges.append)
    try:
        if plan.action == "place":
            result.order = client.place_direct(
                product_id=attempt.product_id,
                customer_order_no=attempt.customer_order_no,
                charge_account=attempt.topup.recharge_account,
                buy_num=attempt.topup.quantity,
                notify_url=notify_url(attempt.supplier),
                max_price=attempt.unit_cost,
            )
        else:
            result.order = client.query(customer_order_no=attempt.customer_order_no)
            result.not_found = result.order is None
    except SupplierError as exc:
        result.error = exc
    return result


def _events(
    plan: Plan, attempt: SupplierAttempt | None, exchanges: list[Exchange]
) -> None:
    TopUpEvent.objects.bulk_create(
        TopUpEvent(
            topup_id=plan.topup_id,
            attempt=attempt,
            supplier_id=attempt.supplier_id if attempt else None,
            kind=TopUpEvent.Kind.REQUEST,
            method=x.method[:30],
            request=x.request,
            response=x.response,
            http_status=x.http_status,
            latency_ms=x.latency_ms,
            ok=not x.error and x.response is not None and x.response.get("code") == 0,
            note=x.error[:200],
        )
        for x in exchanges
    )


def _record(plan: Plan, result: CallResult, *, now: dt.datetime) -> str:
    from orders.locks import order_lock_for_update_by_id

    with transaction.atomic():
        # Lock order: Order → OrderLine → TopUp → attempt (orders/locks.py).
        order_lock_for_update_by_id(order_id=plan.order_id)
        topup = TopUp.objects.select_for_update().get(pk=plan.topup_id)
        attempt = (
            SupplierAttempt.objects.select_for_update().get(pk=plan.attempt_id)
            if plan.attempt_id
            else None
        )
        _events(plan, attempt, result.exchanges)
        if topup.status != TS.WORKING or topup.lease_until != plan.lease_until:
            # A callback finished it, or our lease ran out and another worker took over.
            return "superseded"
        if plan.action == "give_up" or attempt is None:
            _topup_fail(
                topup, now=now, reason=str(REASON_NO_SUPPLIER), code="no_supplier"
            )
            return "failed"
        if not attempt.is_open:
            _wait(topup, now, now)  # a callback closed the attempt meanwhile
            return "superseded"
        if result.order is not None:
            return _apply_order(topup, attempt, result.order, now=now)
        if result.not_found:
            return _apply_not_found(topup, attempt, now=now)
        assert result.error is not None  # noqa: S101 (one of the three is always set)
        return _apply_error(topup, attempt, result.error, action=plan.action, now=now)


def _wait(topup: TopUp, now: dt.datetime, when: dt.datetime) -> None:
    TopUp.objects.filter(pk=topup.pk).update(
        status=TS.WAITING, lease_until=None, next_poll_at=when, updated_at=now
    )
    topup.status, topup.lease_until, topup.next_poll_at = TS.WAITING, None, when
    if when <= now:
        transaction.on_commit(partial(topup_dispatch, topup_id=topup.id))


def _attempt_update(attempt: SupplierAttempt, **fields: object) -> None:
    SupplierAttempt.objects.filter(pk=attempt.pk).update(**fields)
    for name, value in fields.items():
        setattr(attempt, name, value)


def _apply_order(
    topup: TopUp, attempt: SupplierAttempt, order: SupplierOrder, *, now: dt.datetime
) -> str:
    """The supplier reported the order (reply, query or callback). Caller holds the locks."""
    common: dict[str, object] = {
        "supplier_order_id": order.order_id[:64],
        "supplier_state": order.state,
    }
    if attempt.placed_at is None:
        common["placed_at"] = now
    if order.state == wire.SUCCESS:
        _attempt_update(attempt, status=AS.SUCCEEDED, finished_at=now, **common)
        _topup_succeed(topup, now=now)
        return "succeeded"
    if order.state == wire.FAILED:
        _attempt_update(
            attempt,
            status=AS.FAILED,
            finished_at=now,
            last_error=order.fail_reason[:200],
            **common,
        )
        _wait(topup, now, now)  # fail over at once, under a new number
        return "failed_over"
    _attempt_update(attempt, status=AS.PLACED, **common)
    _wait(topup, now, now + backoff(attempt.queries, base=3, cap=300))
    return "waiting"


def _apply_not_found(
    topup: TopUp, attempt: SupplierAttempt, *, now: dt.datetime
) -> str:
    """3003 on a query: before the placement deadline the order may just not show yet."""
    if attempt.placement_deadline and now >= attempt.placement_deadline:
        # Never created: placing again under the same number is safe (protocol).
        _attempt_update(attempt, status=AS.NEW, placement_deadline=None)
        _wait(topup, now, now)
        return "place_again"
    _wait(topup, now, now + backoff(attempt.queries, base=2, cap=30))
    return "waiting"


def _apply_error(
    topup: TopUp,
    attempt: SupplierAttempt,
    error: SupplierError,
    *,
    action: Action,
    now: dt.datetime,
) -> str:
    # The adapter's message already names the supplier's code (kept in error_code too).
    text = error.message[:200]
    if action == "query":
        # A query that failed, was rate limited or was refused (1004 app disabled,
        # 1001...) says nothing about the order, which may exist: the attempt
        # keeps its state (placed or unknown) and we ask again under the same
        # number. Only a refused *placement* proves that no order exists;
        # treating this one as such would fail over and buy the top-up twice.
        if error.outcome == "rejected" and error.code not in RETRY_SAME_NUMBER:
            logger.warning("supplier refused a query for top-up %s: %s", topup.pk, text)
        _attempt_update(attempt, last_error=text, error_code=error.code)
        later = now + dt.timedelta(seconds=error.retry_after or 0)
        _wait(topup, now, max(later, now + backoff(attempt.queries, base=1, cap=120)))
        return "unknown" if error.outcome == "unknown" else "retry_later"
    if error.outcome == "unknown":
        # Placed or not, we cannot tell: query under the same number, with backoff.
        _attempt_update(
            attempt, status=AS.UNKNOWN, last_error=text, error_code=error.code
        )
        _wait(topup, now, now + backoff(attempt.queries, base=1, cap=120))
        return "unknown"
    if error.outcome == "retry_later" or error.code in RETRY_SAME_NUMBER:
        later = now + dt.timedelta(seconds=error.retry_after or 0)
        retry = max(later, now + backoff(attempt.placements, base=1, cap=60))
        # This placement created nothing: the number goes back to "never sent".
        _attempt_update(attempt, status=AS.NEW, last_error=text, error_code=error.code)
        _wait(topup, now, retry)
        return "retry_later"
    if error.code == wire.ORDER_NO_REUSED:
        # 3002: the number exists at the supplier with another biz (the notify
        # URL changed between two placements of this attempt, say). That order
        # may be paid for and may succeed: query it; never fail over or refund.
        _attempt_update(
            attempt, status=AS.UNKNOWN, last_error=text, error_code=error.code
        )
        _wait(topup, now, now + backoff(attempt.queries, base=1, cap=120))
        return "unknown"
    # A definitive refusal: no order exists under this number.
    _attempt_update(
        attempt,
        status=AS.REJECTED,
        last_error=text,
        error_code=error.code,
        finished_at=now,
    )
    if error.is_bad_account:
        _topup_fail(
            topup, now=now, reason=str(REASON_BAD_ACCOUNT), code=str(error.code)
        )
        return "failed"
    _wait(topup, now, now)  # fail over to the next supplier
    return "failed_over"


def _topup_succeed(topup: TopUp, *, now: dt.datetime) -> None:
    from orders.services.lines import order_line_topup_delivered

    TopUp.objects.filter(pk=topup.pk).update(
        status=TS.SUCCEEDED,
        lease_until=None,
        next_poll_at=None,
        finished_at=now,
        needs_attention=False,
        updated_at=now,
    )
    topup.status = TS.SUCCEEDED
    TopUpEvent.objects.create(topup=topup, kind=TopUpEvent.Kind.STATE, note="succeeded")
    order_line_topup_delivered(line_id=topup.order_line_id, now=now)


def _topup_fail(topup: TopUp, *, now: dt.datetime, reason: str, code: str) -> None:
    from orders.services.lines import order_line_topup_failed

    TopUp.objects.filter(pk=topup.pk).update(
        status=TS.FAILED,
        lease_until=None,
        next_poll_at=None,
        finished_at=now,
        fail_reason=reason[:200],
        fail_code=code[:20],
        needs_attention=False,
        updated_at=now,
    )
    topup.status = TS.FAILED
    TopUpEvent.objects.create(
        topup=topup, kind=TopUpEvent.Kind.STATE, note=f"failed: {code}"[:200]
    )
    order_line_topup_failed(line_id=topup.order_line_id, reason=reason, now=now)


def topup_sweep(*, now: dt.datetime | None = None, limit: int = 200) -> int:
    """Queue every open top-up that is due (beat, every few seconds). Returns how many.

    A queued top-up's next look moves one lease ahead, so a backed-up queue does
    not fill with copies of it on every tick (each copy would take a step at once,
    ignoring backoff and Retry-After); if its message is lost, the next sweep
    after that lease queues it again.
    """
    now = now or timezone.now()
    due = (
        TopUp.objects.filter(
            status__in=[TS.PENDING, TS.WAITING, TS.WORKING], next_poll_at__lte=now
        )
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .order_by("next_poll_at")
    )
    ids = list(due.values_list("id", flat=True)[:limit])
    TopUp.objects.filter(pk__in=ids, next_poll_at__lte=now).update(
        next_poll_at=now + lease()
    )
    for topup_id in ids:
        topup_dispatch(topup_id=topup_id)
    return len(ids)


def topup_reconcile(*, now: dt.datetime | None = None) -> int:
    """Flag open top-ups past their deadline for a human, and look at them now.

    Returns how many were newly flagged. Their query goes out through the usual
    step, so the supplier's own record decides before anyone acts.
    """
    now = now or timezone.now()
    stuck = list(
        TopUp.objects.filter(
            status__in=[TS.PENDING, TS.WAITING, TS.WORKING],
            deadline_at__lte=now,
            needs_attention=False,
        ).values_list("id", flat=True)[:500]
    )
    if stuck:
        TopUp.objects.filter(pk__in=stuck).update(
            needs_attention=True,
            attention_note=str(_("超过到账期限仍未完成")),
            next_poll_at=now,
        )
        TopUpEvent.objects.bulk_create(
            TopUpEvent(topup_id=i, kind=TopUpEvent.Kind.STATE, note="past deadline")
            for i in stuck
        )
        logger.warning(
            "%d top-ups are past their deadline; flagged for an operator", len(stuck)
        )
    return len(stuck)
