"""Delivery: mark an order paid, deliver each line by its kind, settle the order.

`order_mark_paid` is the one public way an order becomes paid: a gateway notify
calls it today; risk review and partner balance payments call it next.
Delivery then goes line by line: card codes are sold right here, in the
caller's transaction; top-ups get their supplier work recorded here and run by
the worker after commit. `order_settle` derives the order's state from its
lines whenever one of them changes (SPEC §3).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from catalog.models import Sku
from config.lib.db import Write, rows_get, rows_get_after, writes_run
from config.lib.db_fold import LOCKED, insert_write_rows
from config.lib.errors import DomainError
from fulfillment.locks import card_codes_lock_for_update
from fulfillment.models import CardCode, CodeAccessLog
from fulfillment.services import (
    card_code_reveal,
    card_codes_mark_sold,
    card_codes_sell_sql,
    card_codes_sold_count,
)
from orders.locks import order_lock_for_update_by_id
from orders.models import Order, OrderEmail, OrderEvent, OrderLine, Payment
from orders.services.emails import order_email_row, order_email_written
from orders.transitions import (
    LinesMove,
    lines_move,
    lines_move_planned,
    order_move,
    order_partnered,
    settled_status,
)

logger = logging.getLogger(__name__)

LS = OrderLine.Status

# Where each settled state leaves the order's history and the shopper's inbox.
_SETTLED_EVENTS: dict[str, str] = {
    Order.Status.DELIVERED: OrderEvent.Kind.DELIVERED,
    Order.Status.PARTIALLY_REFUNDED: OrderEvent.Kind.PARTIALLY_REFUNDED,
    Order.Status.REFUNDED: OrderEvent.Kind.REFUNDED,
}


# An order's lines, and per reserved card-code line the codes it has sold.
Selling = tuple[list[OrderLine], dict[int, int]]
# A row to write, as {attname: value} (config/lib/db_fold.py `insert_write_rows`).
Row = dict[str, Any]


class RevealError(DomainError):
    code = "reveal_error"


@dataclass(frozen=True)
class _Paid:
    """The move to paid, decided but not written yet: it goes into the order's next UPDATE."""

    fields: dict[str, Any]
    event: Row  # the `paid` OrderEvent


def order_mark_paid(
    *,
    order: Order,
    payment: Payment,
    now: dt.datetime | None = None,
    hold_reason: str = "",
    selling: Selling | None = None,
) -> None:
    """Record that `payment` paid a pending (or cancelled, re-reserved) order, then deliver.

    With a `hold_reason` (a risk rule fired) the order waits in `review` with its
    stock still reserved, and nothing is delivered until an operator approves.
    The move to paid is written together with the state delivery leaves the
    order in (one UPDATE, e.g. pending → paid → delivered), and its event with
    the others (one INSERT).
    The caller holds the Order row lock and has written `payment`; `selling`:
    the lines and their codes sold, when the caller's lock statement sold them
    (`codes_sale_after_lock`, `now` its time).
    Raises: IllegalTransitionError when the order is not pending or cancelled.
    """
    now = now or timezone.now()
    paid = _Paid(
        fields={"paid_at": now, "paid_amount": order.paid_amount + payment.amount},
        event={
            "order_id": order.pk,
            "kind": OrderEvent.Kind.PAID,
            "detail": {"trade_no": payment.trade_no},
        },
    )
    if hold_reason:
        order_move(
            order, Order.Status.REVIEW, via=(Order.Status.PAID,), now=now, **paid.fields
        )
        writes_run(
            [
                insert_write_rows(
                    OrderEvent,
                    [
                        paid.event,
                        {
                            "order_id": order.pk,
                            "kind": OrderEvent.Kind.REVIEW,
                            "detail": {"reason": hold_reason},
                        },
                    ],
                )
            ]
        )
        return
    _fulfil(order=order, now=now, paid=paid, selling=selling)


def order_fulfil(*, order: Order, now: dt.datetime | None = None) -> list[OrderLine]:
    """Deliver every reserved line of a paid order by its kind; returns the lines.

    1. Card codes: the lines' reserved codes become sold (one UPDATE for all
       lines), the lines delivered.
    2. Top-ups: the line goes `delivering` and its supplier work is recorded
       (the worker picks it up after commit).
    3. Settle the order from its lines.
    Runs in the caller's transaction with the Order row locked.
    Idempotent: lines already past `reserved` are left alone.
    """
    return _fulfil(order=order, now=now or timezone.now(), paid=None)


def _fulfil(
    *,
    order: Order,
    now: dt.datetime,
    paid: _Paid | None,
    selling: Selling | None = None,
) -> list[OrderLine]:
    lines, sold = selling or _lines_read_selling(order=order, now=now)
    reserved = [line for line in lines if line.status == LS.RESERVED]
    codes = [line for line in reserved if line.delivery == Sku.Delivery.CARD_CODE]
    moves: list[LinesMove] = []
    if codes:
        for line in codes:
            if sold[line.id] != line.quantity:
                # The reservation constraints make this impossible; an operator decides.
                logger.error(
                    "order %s line %s has %d of %d codes; left for an operator",
                    order.number,
                    line.id,
                    sold[line.id],
                    line.quantity,
                )
        # Written with the order's move (`_settle`), told after it.
        move = lines_move_planned(
            [line for line in codes if sold[line.id] == line.quantity],
            LS.DELIVERED,
            now=now,
            delivered_at=now,
        )
        if move is not None:
            move.apply()
            moves.append(move)

    topups = [line for line in reserved if line.delivery == Sku.Delivery.DIRECT_TOPUP]
    if topups:
        from fulfillment.services import topups_start_for_lines

        lines_move(topups, LS.DELIVERING, now=now)
        topups_start_for_lines(lines=topups, now=now)
    _settle(order=order, lines=lines, now=now, paid=paid, moves=moves)
    return lines


def _lines_read_selling(
    *, order: Order, now: dt.datetime
) -> tuple[list[OrderLine], dict[int, int]]:
    """The order's lines, and how many codes each reserved card-code line has sold
    once its reserved codes are sold (`card_codes_mark_sold`).

    On PostgreSQL the read and the sale are one statement (the sale a CTE,
    `card_codes_sell_sql`); the lines are read as they were before it.
    """
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        lines = rows_get(OrderLine, order_id=order.pk)
        quantities = {
            line.id: line.quantity
            for line in lines
            if line.status == LS.RESERVED and line.delivery == Sku.Delivery.CARD_CODE
        }
        sold = (
            card_codes_mark_sold(quantities=quantities, now=now) if quantities else {}
        )
        return lines, sold
    table = db.ops.quote_name(OrderLine._meta.db_table)
    sell, sell_params = card_codes_sell_sql(
        lines_sql=f'SELECT "id" FROM {table} WHERE "order_id" = %s'  # noqa: S608
        ' AND "status" = %s AND "delivery" = %s',
        lines_params=[order.pk, LS.RESERVED.value, Sku.Delivery.CARD_CODE.value],
        now=now,
    )
    found = rows_get_after(
        OrderLine,
        ctes=f'sold AS ({sell} RETURNING "order_line_id")',
        cte_params=sell_params,
        extra=_sold_count("sold"),
        order_id=order.pk,
    )
    return selling_counted(found)


def _sold_count(sale: str) -> str:
    """SQL: how many codes the sale CTE `sale` sold the line being read."""
    table = connections[DEFAULT_DB_ALIAS].ops.quote_name(OrderLine._meta.db_table)
    return f'(SELECT count(*) FROM {sale} WHERE {sale}."order_line_id" = {table}."id")'  # noqa: S608


def codes_sale_after_lock(*, now: dt.datetime, go: str, sale: str) -> tuple[Write, str]:
    """`_lines_read_selling`'s sale as a write of the statement that locks the
    order (orders/locks.py `order_lock_for_update`, PostgreSQL): the reserved
    codes of the locked order's reserved card-code lines become sold, when the
    CTE `go` gives a row. Returns the write (to be named `sale`) and the
    `lines_extra` that counts, per line read with the lock, the codes it sold
    (for `selling_counted`)."""
    sql, params, extra = _sale_after_lock_sql(go, sale)
    return Write(sql, [now if p is _SALE_TIME else p for p in params], "rows"), extra


# Where the sale's time goes in `_sale_after_lock_sql`'s parameters.
_SALE_TIME = object()


@cache
def _sale_after_lock_sql(go: str, sale: str) -> tuple[str, tuple[Any, ...], str]:
    """`codes_sale_after_lock`'s SQL and parameters (the time as `_SALE_TIME`)
    and its `lines_extra`: the same for every notify, built once per process."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    table = quote(OrderLine._meta.db_table)
    sell, sell_params = card_codes_sell_sql(
        lines_sql=f'SELECT {table}."id" FROM {table}, {LOCKED}'  # noqa: S608
        f' WHERE {table}."order_id" = {LOCKED}."id"'
        f' AND {table}."status" = %s AND {table}."delivery" = %s'
        f" AND EXISTS (SELECT 1 FROM {go})",
        lines_params=[LS.RESERVED.value, Sku.Delivery.CARD_CODE.value],
        now=_SALE_TIME,  # type: ignore[arg-type]  # replaced per call
    )
    return f'{sell} RETURNING "order_line_id"', tuple(sell_params), _sold_count(sale)


def selling_counted(found: list[tuple[OrderLine, int]]) -> Selling:
    """The lines as read before their sale, and per reserved card-code line the
    codes it has sold (those of a line short of its quantity counted again: sold
    before, in a re-run, or missing)."""
    lines = [line for line, _count in found]
    selling = {
        line.id: (line.quantity, int(count))
        for line, count in found
        if line.status == LS.RESERVED and line.delivery == Sku.Delivery.CARD_CODE
    }
    sold = {line_id: count for line_id, (_quantity, count) in selling.items()}
    short = [line_id for line_id, (q, count) in selling.items() if count != q]
    if short:  # codes sold before (a re-run), or missing: count them all
        sold.update(card_codes_sold_count(order_line_ids=short))
    return lines, sold


def order_settle(
    *,
    order: Order,
    lines: list[OrderLine] | None = None,
    now: dt.datetime | None = None,
) -> str:
    """Bring a paid order's state (and its bundle lines) in line with its lines.

    All delivered → delivered; some refunded → partially_refunded; all refunded →
    refunded; anything still open → fulfilling. Returns the order's state.
    Runs with the Order row locked. Idempotent.
    """
    return _settle(order=order, lines=lines, now=now or timezone.now(), paid=None)


def _settle(
    *,
    order: Order,
    lines: list[OrderLine] | None,
    now: dt.datetime,
    paid: _Paid | None,
    moves: Sequence[LinesMove] = (),
) -> str:
    """`moves`: line moves already applied to `lines` in memory, not written yet:
    they go into the order's statement (or alone, when the order stays)."""
    target = _settle_target(order=order, lines=lines, now=now, paid=paid)
    partnered = order_partnered(order)
    if target.move is None:
        if moves:
            answers = writes_run([move.write for move in moves])
            for move, updated in zip(moves, answers, strict=True):
                move.done(updated, partnered=partnered)
        return target.status
    fields, events, via, email = target.move
    # The line moves, the order's move, its events and the email row: one
    # statement (writes_run).
    also = [move.write for move in moves]
    if events:
        also.append(insert_write_rows(OrderEvent, events))
    if email is not None:
        also.append(insert_write_rows(OrderEmail, [email], once=True))
    answers = order_move(order, target.status, via=via, now=now, also=also, **fields)
    for move, updated in zip(moves, answers, strict=False):
        move.done(updated, partnered=partnered)
    if email is not None and answers[-1] is not None:  # None: written before
        order_email_written()
    return target.status


@dataclass(frozen=True)
class _Target:
    """Where `_settle` leaves the order: `status`, and `move` (its fields, events,
    the steps it goes through, its email row) when the order moves."""

    status: str
    move: tuple[dict[str, Any], list[Row], tuple[str, ...], Row | None] | None = None


def _settle_target(
    *,
    order: Order,
    lines: list[OrderLine] | None,
    now: dt.datetime,
    paid: _Paid | None,
) -> _Target:
    # Being paid right now, the order is paid for every decision below.
    status = Order.Status.PAID if paid is not None else order.status
    if status in (Order.Status.PENDING, Order.Status.CANCELLED):
        return _Target(status)
    lines = rows_get(OrderLine, order_id=order.pk) if lines is None else lines
    _bundles_settle(lines, now)
    settled = settled_status(lines)
    fields = dict(paid.fields) if paid is not None else {}
    events = [paid.event] if paid is not None else []
    target: str
    if settled is None:
        if status not in (Order.Status.PAID, Order.Status.REVIEW):
            # past paid already: nothing to move (never while being paid)
            return _Target(status)
        target = Order.Status.FULFILLING
    elif settled == status:
        return _Target(settled)  # nothing changed (never while being paid)
    else:
        target = settled
        if settled == Order.Status.DELIVERED or (
            settled == Order.Status.PARTIALLY_REFUNDED and order.delivered_at is None
        ):
            fields["delivered_at"] = now
        events.append({"order_id": order.pk, "kind": _SETTLED_EVENTS[settled]})
    via = (Order.Status.PAID,) if paid is not None else ()
    # What they got: codes to reveal, accounts credited (one email per order).
    email = (
        order_email_row(order=order, kind=OrderEmail.Kind.DELIVERED)
        if settled is not None and any(line.status == LS.DELIVERED for line in lines)
        else None
    )
    return _Target(target, (fields, events, via, email))


def _bundles_settle(lines: list[OrderLine], now: dt.datetime) -> None:
    """A bundle line follows its parts: delivering, then delivered or refunded."""
    for parent in (line for line in lines if line.is_bundle):
        parts = [line for line in lines if line.parent_id == parent.id]
        refunded = sum((p.refunded_amount for p in parts), Decimal(0))
        if refunded != parent.refunded_amount:
            OrderLine.objects.filter(pk=parent.pk).update(refunded_amount=refunded)
            parent.refunded_amount = refunded
        if all(p.status == LS.REFUNDED for p in parts):
            target = LS.REFUNDED
        elif all(p.status in (LS.DELIVERED, LS.REFUNDED) for p in parts):
            target = LS.DELIVERED
        else:
            target = LS.DELIVERING
        if target == parent.status or parent.status not in (LS.RESERVED, LS.DELIVERING):
            continue
        fields: dict[str, Any] = {"delivered_at": now} if target == LS.DELIVERED else {}
        lines_move([parent], target, now=now, **fields)


def order_code_reveal(
    *, order: Order, code_id: int, user: User | None, ip_address: str | None = None
) -> str:
    """Decrypt one of the buyer's codes; audited on the code and on the order.

    `user` None: the buyer of a guest order, whose access (link or lookup) the
    caller has checked; audited with no actor and the `guest` marker (the
    order event's detail, the access log's revealed_by_guest).
    Raises: RevealError when the code's line is not delivered or not the buyer's.
    """
    if (order.user_id != user.pk) if user is not None else not order.is_guest:
        raise RevealError(_("无权查看该卡密"))
    code = CardCode.objects.filter(
        id=code_id,
        order_line__order_id=order.id,
        order_line__status=LS.DELIVERED,
        status=CardCode.Status.SOLD,
    ).first()
    if code is None:
        raise RevealError(_("该卡密不属于此订单，或尚未发货"))
    with transaction.atomic():
        # Order → CardCode, as after-sales takes them (orders/services/
        # self_refund.py): a reveal racing a refund of the same code waits, then
        # finds the code still this line's, or gone; never both.
        order_lock_for_update_by_id(order_id=order.id)
        locked = card_codes_lock_for_update(ids=[code.id])
        if not locked or (locked[0].status, locked[0].order_line_id) != (
            CardCode.Status.SOLD,
            code.order_line_id,
        ):
            raise RevealError(_("该卡密已退回或已更换，无法查看"))
        detail: dict[str, object] = {"code_id": code.id, "hint": code.hint}
        if user is None:
            detail["guest"] = True
        OrderEvent.objects.create(
            order=order,
            kind=OrderEvent.Kind.CODE_REVEALED,
            actor_id=user.pk if user is not None else None,
            detail=detail,
        )
        return card_code_reveal(
            code=code,
            actor=user,
            action=CodeAccessLog.Action.REVEALED_BY_BUYER
            if user is not None
            else CodeAccessLog.Action.REVEALED_BY_GUEST,
            ip_address=ip_address,
        )
