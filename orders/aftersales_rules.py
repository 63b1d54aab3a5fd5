"""The self-service refund's rules, as pure functions (no ORM): the order page
shows them and orders/services/self_refund.py enforces them, with the same numbers.

A shopper may return, in one click, the codes of a card-code line they have
never revealed, within the SKU's window after delivery (Sku.self_refund_hours;
0 turns it off). Each returned code is worth its share of what the line cost.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, Decimal

from config.lib.money import CENT

DEFAULT_SELF_REFUND_HOURS = 24  # catalog.Sku.self_refund_hours' default


def self_refund_deadline(
    *, delivered_at: dt.datetime | None, hours: int
) -> dt.datetime | None:
    """Until when the line's unrevealed codes can be refunded; None when never."""
    if delivered_at is None or hours <= 0:
        return None
    return delivered_at + dt.timedelta(hours=hours)


def self_refund_open(
    *, delivered_at: dt.datetime | None, hours: int, now: dt.datetime
) -> bool:
    """Whether the window is open now (the deadline itself is already too late)."""
    deadline = self_refund_deadline(delivered_at=delivered_at, hours=hours)
    return deadline is not None and now < deadline


def self_refund_amount(
    *,
    line_amount: Decimal,
    quantity: int,
    refundable: Decimal,
    returning: int,
    still_sold: int,
) -> Decimal:
    """What `returning` of the line's `still_sold` codes give back.

    Each code is worth amount / quantity, rounded down to the fen; returning
    every code the line still holds gives back all that is left, so the fen lost
    to rounding come back with the last code. Never more than is left to refund.
    """
    if returning <= 0 or quantity <= 0:
        return Decimal("0.00")
    if returning >= still_sold:
        return refundable
    share = (line_amount * returning / quantity).quantize(CENT, rounding=ROUND_DOWN)
    return min(share, refundable)
