"""Codes coming back from an order line (after-sales), and more codes for a line.

A sold code is taken back when its line is refunded or the code is replaced: it
goes back on sale only if its plaintext never left the vault (no reveal, no
export: any access-log row), otherwise it is void. Either way it leaves its
line (the vault's constraint: only reserved and sold codes name a line); the
orders app keeps the link (orders.ReturnedCode).

Lock order (fulfillment/locks.py): the caller holds the Order row; the codes
are locked here, by id (`card_codes_lock_for_update`), then changed with a
status guard. A buyer's reveal locks the same code row (orders/services/
delivery.py), so a reveal and a take-back of one code never both happen.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from catalog.models import Sku
from fulfillment.locks import card_codes_lock_for_update
from fulfillment.models import CardCode, CodeAccessLog
from fulfillment.services.codes import card_codes_reserve
from fulfillment.soldout import sold_out_forget

CS = CardCode.Status


@dataclass(frozen=True)
class TakenBack:
    """One code taken back from a line: where it went and whether it had been seen."""

    code_id: int
    batch_id: int
    hint: str
    restocked: bool
    was_revealed: bool


def card_codes_sold_lock(
    *, order_line_id: int, code_ids: list[int] | None = None
) -> list[CardCode]:
    """The line's sold codes (only `code_ids` among them, if given), their rows locked.

    Read, lock by id, then keep what is still sold to this line after the lock
    (a concurrent take-back or replacement may have moved it meanwhile).
    Locks: CardCode (pk order).
    """
    ids = CardCode.objects.filter(order_line_id=order_line_id, status=CS.SOLD)
    if code_ids is not None:
        ids = ids.filter(id__in=code_ids)
    locked = card_codes_lock_for_update(ids=list(ids.values_list("id", flat=True)))
    return [
        c for c in locked if c.status == CS.SOLD and c.order_line_id == order_line_id
    ]


def card_codes_revealed_ids(*, code_ids: list[int]) -> set[int]:
    """Which of these codes have had their plaintext leave the vault (revealed or exported)."""
    if not code_ids:
        return set()
    return set(
        CodeAccessLog.objects.filter(code_id__in=code_ids)
        .values_list("code_id", flat=True)
        .distinct()
    )


def card_codes_take_back(
    *, codes: list[CardCode], restock: bool, now: dt.datetime
) -> list[TakenBack]:
    """Take sold codes back from their line: revealed ones are voided; the others
    go back on sale (`restock`) or are voided.

    The caller holds their row locks (`card_codes_sold_lock`) in its transaction.
    Raises: RuntimeError when a code was not sold any more (a lock was missing).
    Idempotent only through the caller's lock: codes no longer sold are refused.
    """
    if not codes:
        return []
    revealed = card_codes_revealed_ids(code_ids=[c.id for c in codes])
    back = [c for c in codes if restock and c.id not in revealed]
    void = [c for c in codes if c not in back]
    moved = 0
    if back:
        moved += CardCode.objects.filter(
            id__in=[c.id for c in back], status=CS.SOLD
        ).update(status=CS.AVAILABLE, order_line=None, reserved_at=None, sold_at=None)
        # Their SKUs may have been flagged sold out: they are not any more.
        sold_out_forget({c.sku_id for c in back})
    if void:
        moved += CardCode.objects.filter(
            id__in=[c.id for c in void], status=CS.SOLD
        ).update(status=CS.VOID, order_line=None)
    if moved != len(codes):
        raise RuntimeError("codes changed under their row locks")
    return [
        TakenBack(
            code_id=c.id,
            batch_id=c.batch_id,
            hint=c.hint,
            restocked=c in back,
            was_revealed=c.id in revealed,
        )
        for c in codes
    ]


def card_codes_sell_more(
    *, sku: Sku, order_line_id: int, quantity: int, now: dt.datetime
) -> list[int]:
    """Sell `quantity` more codes from stock to a line (a replacement); their ids.

    Reserved through the same claim as checkout (SKIP LOCKED), then sold.
    Raises: OutOfStockError (the caller rolls back: some may be reserved by then).
    Locks: free CardCode rows, SKIP LOCKED.
    """
    ids = card_codes_reserve(
        sku=sku, order_line_id=order_line_id, quantity=quantity, now=now
    )
    sold = CardCode.objects.filter(id__in=ids, status=CS.RESERVED).update(
        status=CS.SOLD, sold_at=now
    )
    if sold != len(ids):
        raise RuntimeError("reserved codes changed before they were sold")
    return ids
