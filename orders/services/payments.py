"""Payments: start one, take gateway notifies, refund.

A notify is recorded before anything else, in its own transaction, so even a
forged or broken one leaves a trace. Applying it locks the order; the unique
(gateway, trade_no) key makes a repeated notify a no-op.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from config.lib.db import (
    Write,
    insert_write,
    row_insert,
    rows_update,
    update_write,
    writes_run,
)
from config.lib.db_fold import LOCKED, LOCKED_FRESH
from config.lib.db_row import model_new, row_values
from config.lib.errors import DomainError
from fulfillment.services import OutOfStockError
from orders.gateways import (
    ClientKind,
    ParsedNotify,
    gateway_default,
    gateway_get,
)
from orders.locks import order_lock_for_update
from orders.models import (
    Order,
    OrderEvent,
    OrderLine,
    Payment,
    PaymentNotify,
)
from orders.services import notify_intake
from orders.services.checkout import lines_reserve, order_cancel
from orders.services.delivery import (
    Selling,
    codes_sale_after_lock,
    order_mark_paid,
    selling_counted,
)
from orders.services.refunds import refund_payment_whole, refund_request
from orders.transitions import lines_move
from risk.cache import risk_snapshot
from risk.services import risk_assess_paid
from risk.types import Action, Stage

logger = logging.getLogger(__name__)
Outcome = PaymentNotify.Outcome

REASON_CANCELLED_NO_STOCK = "paid after cancellation; stock gone"
REASON_DUPLICATE_PAYMENT = "order was already paid by another trade"
# A payment found by asking the gateway is recorded as a notify with this id prefix.
QUERY_NOTIFY_PREFIX = "query:"


@dataclass(frozen=True)
class NotifyResult:
    accepted: bool  # reply the gateway's ack body; otherwise it retries
    outcome: str
    notify_id: int


def payment_start(
    *,
    order: Order,
    notify_url: str,
    return_url: str,
    gateway_name: str | None = None,
    client: ClientKind = "desktop",
) -> str:
    """Open a payment for a pending order; returns the URL to send the shopper to.

    Without a gateway name, the first enabled gateway.
    Raises: DomainError when the order cannot be paid any more or the gateway
    refuses; httpx.HTTPError when the gateway cannot be reached.
    """
    if order.status != Order.Status.PENDING:
        raise DomainError("订单不是待支付状态")
    gateway = gateway_get(gateway_name) if gateway_name else gateway_default()
    if gateway is None:
        raise DomainError(f"unknown gateway {gateway_name}")
    return gateway.payment_start(
        order=order, notify_url=notify_url, return_url=return_url, client=client
    )


def payment_notify_handle(
    *,
    gateway_name: str,
    fields: dict[str, str],
    remote_addr: str | None = None,
    body: bytes | None = None,
) -> NotifyResult:
    """Record and act on one gateway notify.

    1. Record it as received (committed on its own), its payload bounded and
       made storable, its raw body's SHA-256 beside it; a field no gateway
       sends (NUL, longer than its column) records it `invalid` right away.
    2. Verify signature and fields; then `_notify_apply`: find the order, check
       the amount, act, and write the outcome in the same transaction.
    Idempotent: on (gateway, trade_no).
    Raises: LookupError for an unknown gateway.
    """
    gateway = gateway_get(gateway_name)
    if gateway is None:
        raise LookupError(gateway_name)
    notify, parsed = notify_intake.notify_record(
        gateway_name=gateway_name,
        fields=fields,
        remote_addr=remote_addr,
        body=body,
        columns=("out_trade_no", "trade_no", "notify_id"),
        parse=gateway.notify_parse,
    )
    if parsed is None:
        return _finish(notify, accepted=False)
    return _notify_apply(notify=notify, gateway_name=gateway_name, parsed=parsed)


def payment_query_apply(*, gateway_name: str, parsed: ParsedNotify) -> NotifyResult:
    """Honour what a gateway's trade query answered, as if its notify had come.

    For a payment whose notify was lost (orders/services/notify_sweep.py). The
    answer is recorded as a notify of that gateway with notify_id
    `query:<trade_no>` and payload `source=query`, then applied exactly as a
    notify is: a later notify of the same trade is a duplicate.
    Idempotent: on (gateway, trade_no).
    """
    fields = {
        "source": "query",
        "out_trade_no": parsed.out_trade_no,
        "trade_no": parsed.trade_no,
        "total_amount": str(parsed.amount),
        "trade_status": parsed.status,
    }
    notify = row_insert(
        PaymentNotify(
            gateway=gateway_name,
            payload=notify_intake.payload_bound(fields),
            out_trade_no=notify_intake.storable(parsed.out_trade_no)[:64],
            trade_no=notify_intake.storable(parsed.trade_no)[:64],
            notify_id=notify_intake.storable(QUERY_NOTIFY_PREFIX + parsed.trade_no)[
                :64
            ],
        )
    )
    return _notify_apply(notify=notify, gateway_name=gateway_name, parsed=parsed)


def _notify_apply(
    *, notify: PaymentNotify, gateway_name: str, parsed: ParsedNotify
) -> NotifyResult:
    """Act on a verified notify (or query answer) recorded as `notify`.

    1. An answer no trade of ours has (amount, lengths) is `invalid`.
    2. Paid trade for a pending or cancelled order: the risk engine's paid-stage
       check first, outside the transaction (it may count in Redis); `review`
       (or `block`: the money is in) holds the order: paid, in review, its
       stock reserved, nothing delivered until an operator decides.
    3. Under the order lock: closed trade → cancel the order if still pending;
       paid trade ("success", nothing else) → record the payment and deliver
       (or re-reserve a cancelled order, or refund when its stock is gone, or
       refund a second payment); any other status → `invalid`.
    4. The outcome is written in that same transaction: a worker killed after
       the commit leaves the notify saying what was done, never `received`.
    Locks: Order (then what delivery locks).
    """
    problem = notify_intake.parsed_problem(parsed)
    if problem:
        _outcome_record(notify, Outcome.INVALID, problem)
        return _finish(notify, accepted=False)
    hold_reason = _risk_hold_reason(parsed)

    # A paid trade's payment row, the notify's usual outcome and (for an order
    # to deliver now) its codes' sale are written by the statement that locks
    # the order (PostgreSQL): two round trips fewer.
    now = timezone.now()
    # What `Payment(**given)` gives, without `Model.__init__` (config/lib/db_row.py).
    given = {
        "gateway": gateway_name,
        "trade_no": parsed.trade_no,
        "amount": parsed.amount,
    }
    payment = model_new(Payment, given)
    early = (
        parsed.status == "success"
        and connections[DEFAULT_DB_ALIAS].vendor == "postgresql"
    )
    writes, lines_extra = (
        _paid_writes(payment, given, notify, now=now, deliver=not hold_reason)
        if early
        else ([], None)
    )
    outcome: str
    with transaction.atomic():
        # One locked read serves every branch: lock order Order → CardCode.
        locked = order_lock_for_update(
            number=parsed.out_trade_no, then=writes, lines_extra=lines_extra
        )
        order, written = locked.row, locked.answers
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
        elif parsed.status == "success":
            # Its order's id (the relation is set where a refund may read it).
            payment.order_id = order.pk
            sold_now = early and lines_extra is not None and written[_GO] == 1
            outcome = _payment_apply(
                order=order,
                notify=notify,
                payment=payment,
                parsed=parsed,
                now=now,
                hold_reason=hold_reason,
                written=written if early else None,
                selling=selling_counted(locked.children) if sold_now else None,
            )
            message, accepted = "", True
        else:
            # A gateway's `waiting` (or anything new) never pays an order.
            outcome, accepted = Outcome.INVALID, False
            message = f"trade status {parsed.status[:30]} is not final"
        _outcome_record(
            notify, outcome, message, order_id=order.id if order is not None else None
        )
    return _finish(notify, accepted=accepted)


def _outcome_record(
    notify: PaymentNotify, outcome: str, message: str, *, order_id: int | None = None
) -> None:
    """Write the notify's outcome (in the caller's transaction, where it has one),
    unless it already says exactly that."""
    message = message[:200]
    if (notify.outcome, notify.message, notify.order_id) == (
        outcome,
        message,
        order_id,
    ):
        return
    notify.outcome, notify.message, notify.order_id = outcome, message, order_id
    rows_update(
        PaymentNotify,
        {"pk": notify.pk},
        outcome=outcome,
        message=message,
        order_id=order_id,
    )


def _finish(notify: PaymentNotify, *, accepted: bool) -> NotifyResult:
    """After the outcome is recorded: log a rejection, answer the caller."""
    if not accepted:
        logger.warning(
            "rejected %s notify %s for %s: %s",
            notify.gateway,
            notify.id,
            notify.out_trade_no,
            notify.outcome,
        )
    return NotifyResult(accepted=accepted, outcome=notify.outcome, notify_id=notify.id)


def _risk_hold_reason(parsed: ParsedNotify) -> str:
    """Why the risk engine holds this paid order for review ("" to deliver).

    Asked only for a paid trade of an order still pending or cancelled (the ones
    this notify may deliver); called before the transaction, so the engine's
    Redis counters are never touched while the order row is locked.
    """
    # No paid-stage rule active (the usual case): nothing can hold the order,
    # and the notify costs no query more (the rules are cached per process).
    if parsed.status != "success" or not risk_snapshot().by_stage[Stage.PAID]:
        return ""
    found = (
        Order.objects.filter(number=parsed.out_trade_no)
        .values_list("id", "status", "total_amount")
        .first()
    )
    if found is None:
        return ""
    order_id, status, total = found
    if total != parsed.amount or status not in (
        Order.Status.PENDING,
        Order.Status.CANCELLED,
    ):
        return ""
    assessment = risk_assess_paid(
        order_id=order_id,
        payment_outcome="paid" if status == Order.Status.PENDING else "reopened",
    )
    # Once paid, "block" cannot undo the payment: an operator decides, as for review.
    if assessment.action not in (Action.REVIEW, Action.BLOCK):
        return ""
    return assessment.reasons or "risk review"


# The writes of `_paid_writes`, by their place (`row_lock_then` names them w0...).
_PAYMENT, _MARKED, _GO, _SALE = range(4)


def _paid_writes(
    payment: Payment,
    given: dict[str, Any],
    notify: PaymentNotify,
    *,
    now: dt.datetime,
    deliver: bool,
) -> tuple[list[Write], str | None]:
    """Writes reading the locked order (`order_lock_for_update`), and the lines'
    SQL expression (None: no lines read).

    1. `payment` (its order left out) inserted, and `notify` marked paid: with
       the order's id, and only when its total is the amount paid (what
       `_notify_apply` checks first). A repeated notify is expected (gateways
       retry until acknowledged): the unique (gateway, trade_no) key answers it
       (no row: None), and refuses a trade replayed on another order. The
       notify is marked paid with it (the usual outcome; `_notify_apply`
       corrects it otherwise).
    2. `deliver` (no risk hold): when the payment was written, the order is
       pending, and it is `LOCKED_FRESH` (nobody changed it while this waited
       for its lock: its lines, read by the statement's snapshot, are as the
       lock left them), `go` gives a row and the order's codes are sold, as
       `order_mark_paid` would sell them. Otherwise nothing is sold here and
       delivery reads the lines and sells after the lock, as before.
    """
    # `insert_values(payment, skip=("order",))` from the values it was built
    # from (`given`), leaving on it what that leaves (its `created_at`).
    columns, values, attrs = row_values(Payment, given, skip=("order",))
    payment.__dict__.update(attrs)
    payment_sql, marked_sql, go_sql = _paid_sql(tuple(columns))
    writes = [
        Write(payment_sql, [*values, payment.amount], "pk"),
        Write(marked_sql, [Outcome.PAID.value, "", notify.pk, payment.amount]),
    ]
    if not deliver:
        return writes, None
    go = Write(go_sql, [Order.Status.PENDING.value, payment.amount], "rows")
    sale, lines_extra = codes_sale_after_lock(now=now, go=f"w{_GO}", sale=f"w{_SALE}")
    return [*writes, go, sale], lines_extra


@cache
def _paid_sql(columns: tuple[str, ...]) -> tuple[str, str, str]:
    """The SQL of `_paid_writes`' payment, notify and `go` writes (the same text
    for every notify: built once per process; `columns`: the payment's)."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    paid = f"{LOCKED}.{quote('total_amount')} = %s"
    table = quote(PaymentNotify._meta.db_table)
    return (
        f"INSERT INTO {quote(Payment._meta.db_table)}"  # noqa: S608 (model names)
        f" ({', '.join(columns)}, {quote('order_id')})"
        f" SELECT {', '.join(['%s'] * len(columns))}, {LOCKED}.{quote('id')}"
        f" FROM {LOCKED} WHERE {paid}"
        f" ON CONFLICT DO NOTHING RETURNING {quote('id')}",
        f"UPDATE {table} SET {quote('outcome')} = %s,"  # noqa: S608 (model names)
        f" {quote('message')} = %s, {quote('order_id')} = {LOCKED}.{quote('id')}"
        f" FROM {LOCKED} WHERE {table}.{quote('id')} = %s AND {paid}",
        f"SELECT 1 FROM {LOCKED} WHERE {LOCKED}.{LOCKED_FRESH}"  # noqa: S608
        f" AND {LOCKED}.{quote('status')} = %s AND {paid}"
        f" AND EXISTS (SELECT 1 FROM w{_PAYMENT})",
    )


def _payment_apply(
    *,
    order: Order,
    notify: PaymentNotify,
    payment: Payment,
    parsed: ParsedNotify,
    now: dt.datetime,
    hold_reason: str = "",
    written: list[Any] | None = None,
    selling: Selling | None = None,
) -> str:
    """Record `payment` (for `order`, not written yet) and act on it. The caller
    holds the Order row lock.

    `written`: the answers of `_paid_writes`, when the lock's statement wrote
    them; `selling`: the lines and codes it sold (the order is pending).
    `hold_reason`: a risk rule holds the order for review once paid.
    Returns the notify outcome; DUPLICATE when this trade was already recorded.
    """
    if written is None:
        # As `_paid_writes` does, in one statement after the lock.
        written = writes_run(
            [
                insert_write([payment], once=True),
                update_write(
                    PaymentNotify,
                    {"pk": notify.pk},
                    outcome=Outcome.PAID,
                    message="",
                    order_id=order.pk,
                ),
            ]
        )
    payment_pk = written[_PAYMENT]
    notify.outcome, notify.message, notify.order_id = Outcome.PAID, "", order.pk
    if payment_pk is None:
        return Outcome.DUPLICATE
    payment.pk = payment_pk
    payment._state.adding = False
    if order.status != Order.Status.PENDING:
        payment.order = order  # for the refunds below (as the model relation)
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

    order_mark_paid(
        order=order,
        payment=payment,
        now=now,
        hold_reason=hold_reason,
        selling=selling,
    )
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
