"""Every order and order-line state change goes through here (SPEC §3).

Each move is checked against the allowed graph and written as one conditional
UPDATE (`WHERE status = <what we saw>`), so a move made from a stale copy of
the row, or an illegal one, raises instead of silently overwriting. Callers hold
the Order row lock, which makes a lost race a bug, not a normal event. A move
through several states at once (paid and delivered in one notify) checks every
step and is still one UPDATE: nothing is written, then read back, then written.
The UPDATEs are plain SQL (config/lib/db.py): they run on every paid order.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from config.lib.db import Write, update_write, writes_run
from config.lib.errors import DomainError
from orders.models import Order, OrderLine
from orders.signals import order_lines_delivered, order_status_changed

OS = Order.Status
LS = OrderLine.Status

ORDER_MOVES: dict[str, frozenset[str]] = {
    OS.PENDING: frozenset({OS.PAID, OS.CANCELLED}),
    # A payment that lands after cancellation is still honoured (SPEC §3).
    OS.CANCELLED: frozenset({OS.PAID}),
    OS.PAID: frozenset(
        {OS.REVIEW, OS.FULFILLING, OS.DELIVERED, OS.REFUNDED, OS.PARTIALLY_REFUNDED}
    ),
    OS.REVIEW: frozenset(
        {OS.FULFILLING, OS.DELIVERED, OS.REFUNDED, OS.PARTIALLY_REFUNDED}
    ),
    OS.FULFILLING: frozenset({OS.DELIVERED, OS.REFUNDED, OS.PARTIALLY_REFUNDED}),
    # After-sales: a delivered order can still give money back.
    OS.DELIVERED: frozenset({OS.REFUNDED, OS.PARTIALLY_REFUNDED}),
    OS.PARTIALLY_REFUNDED: frozenset({OS.REFUNDED}),
    OS.REFUNDED: frozenset(),
}

LINE_MOVES: dict[str, frozenset[str]] = {
    LS.RESERVED: frozenset({LS.DELIVERING, LS.DELIVERED, LS.REFUNDED, LS.CANCELLED}),
    # Re-reserved for a late payment, or refunded when its stock is gone.
    LS.CANCELLED: frozenset({LS.RESERVED, LS.REFUNDED}),
    LS.DELIVERING: frozenset({LS.DELIVERED, LS.REFUNDED}),
    LS.DELIVERED: frozenset({LS.REFUNDED}),
    LS.REFUNDED: frozenset(),
}

# Lines of a paid order whose fate is sealed. (A cancelled line in a paid order
# is waiting to be re-reserved or refunded: not settled yet.)
LINE_SETTLED = frozenset({LS.DELIVERED, LS.REFUNDED})


class IllegalTransitionError(DomainError):
    code = "illegal_transition"


def order_move(
    order: Order,
    to: str,
    *,
    via: Sequence[str] = (),
    now: dt.datetime | None = None,
    also: Sequence[Write] = (),
    **fields: Any,
) -> list[Any]:
    """Move an order to `to` (through the states in `via`), setting `fields` too.

    `also`: writes that go with the move (its events, an email row), sent in the
    same statement (config/lib/db.py `writes_run`); returns their answers.
    Raises IllegalTransitionError when any step is not allowed.
    """
    path = [order.status, *via, to]
    for start, end in itertools.pairwise(path):
        if end not in ORDER_MOVES[start]:
            raise IllegalTransitionError(f"order {order.number}: {start} → {end}")
    now = now or timezone.now()
    updated, *answers = writes_run(
        [
            update_write(
                Order,
                {"pk": order.pk, "status": order.status},
                status=to,
                updated_at=now,
                **fields,
            ),
            *also,
        ]
    )
    if updated != 1:
        raise IllegalTransitionError(
            f"order {order.number} changed under us (was {order.status})"
        )
    # Told after commit (orders/signals.py): a rolled-back move tells nobody.
    transaction.on_commit(
        partial(
            order_status_changed.send_robust,
            sender=Order,
            order_id=order.pk,
            number=order.number,
            status=to,
            previous=order.status,
            partnered=order_partnered(order),
        )
    )
    order.status = to
    order.updated_at = now
    for name, value in fields.items():
        setattr(order, name, value)
    return answers


def order_partnered(order: Order) -> bool | None:
    """`Order.partnered` as loaded (None when the row was read without it)."""
    value = order.__dict__.get("partnered")
    return value if isinstance(value, bool) else None


@dataclass(frozen=True)
class LinesMove:
    """A checked move of lines, for the caller to write (`write`, its answer the
    row count) in a statement of its own choosing, then `done`."""

    lines: list[OrderLine]
    start: str
    to: str
    now: dt.datetime
    fields: dict[str, Any]
    write: Write

    def apply(self) -> None:
        """Give the in-memory lines their new state."""
        for line in self.lines:
            line.status = self.to
            line.updated_at = self.now
            for name, value in self.fields.items():
                setattr(line, name, value)

    def done(self, updated: int, *, partnered: bool | None = None) -> None:
        """Check the write's row count; tell `order_lines_delivered` (in this
        transaction) about lines moved to `delivered`. `partnered`: the order's
        (orders/signals.py)."""
        if updated != len(self.lines):
            raise IllegalTransitionError(
                f"order lines changed under us (were {self.start})"
            )
        if self.to == LS.DELIVERED:
            order_lines_delivered.send(
                sender=OrderLine, lines=self.lines, now=self.now, partnered=partnered
            )


def lines_move_planned(
    lines: Iterable[OrderLine],
    to: str,
    *,
    now: dt.datetime | None = None,
    **fields: Any,
) -> LinesMove | None:
    """Check a move of lines that share one current state to `to` and build its
    UPDATE, without running it (None: no lines). Raises IllegalTransitionError
    when a line is in another state or the move is not allowed."""
    lines = list(lines)
    if not lines:
        return None
    current = {line.status for line in lines}
    if len(current) != 1:
        raise IllegalTransitionError(f"lines in mixed states {sorted(current)} → {to}")
    (start,) = current
    if to not in LINE_MOVES[start]:
        raise IllegalTransitionError(f"order line: {start} → {to}")
    now = now or timezone.now()
    write = update_write(
        OrderLine,
        {"pk": [line.pk for line in lines], "status": start},
        status=to,
        updated_at=now,
        **fields,
    )
    return LinesMove(lines, start, to, now, fields, write)


def lines_move(
    lines: Iterable[OrderLine],
    to: str,
    *,
    now: dt.datetime | None = None,
    partnered: bool | None = None,
    **fields: Any,
) -> None:
    """Move lines that share one current state to `to` in one UPDATE.

    Raises IllegalTransitionError when a line is in another state or the move is
    not allowed. Lines moved to `delivered` are told to `order_lines_delivered`
    in this transaction (orders/signals.py: commissions are written with them);
    `partnered`: their order's `Order.partnered`, when the caller knows it.
    """
    move = lines_move_planned(lines, to, now=now, **fields)
    if move is None:
        return
    (updated,) = writes_run([move.write])
    if updated == len(move.lines):
        move.apply()
    move.done(updated, partnered=partnered)  # raises when a line changed under us


def settled_status(lines: Iterable[OrderLine]) -> str | None:
    """The order state its delivered-or-refunded lines add up to, or None while any is open.

    Only lines that get delivered count (a bundle's parent line follows its parts):
    all delivered and nothing refunded → delivered; every line refunded → refunded;
    anything in between (a free bundle part delivered included) → partially_refunded.
    """
    leaves = [line for line in lines if not line.is_bundle]
    if not leaves or any(line.status not in LINE_SETTLED for line in leaves):
        return None
    if all(line.status == LS.REFUNDED for line in leaves):
        return OS.REFUNDED
    # A part delivered (even a free bundle part) means the shopper got something.
    if any(line.status == LS.REFUNDED or line.refunded_amount > 0 for line in leaves):
        return OS.PARTIALLY_REFUNDED
    return OS.DELIVERED
