"""Money helpers: CNY with two decimal places, never float."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CURRENCY = "CNY"
CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def quantize(value: Decimal | int | str) -> Decimal:
    """Round to fen, half up, as Chinese gateways do."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


# What gateways write: digits, at most two decimals; no sign, exponent, spaces or
# "NaN" (all of which Decimal() accepts), at most ten digits before the point.
PLAIN_AMOUNT = re.compile(r"(0|[1-9][0-9]{0,9})(\.[0-9]{1,2})?")


def parse_amount(raw: str) -> Decimal | None:
    """Parse a gateway amount like "30.00"; None when it is not a plain 2-place number."""
    if not isinstance(raw, str) or not PLAIN_AMOUNT.fullmatch(raw):
        return None
    try:
        value = Decimal(raw)
    except (InvalidOperation, TypeError, ValueError):
        return None
    return value.quantize(CENT)


def format_amount(value: Decimal) -> str:
    """The canonical "30.00" form used in gateway payloads."""
    return f"{quantize(value):.2f}"


def allocate(total: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """Split `total` in proportion to `weights`, to the fen, adding up exactly.

    Largest remainder: every part is rounded down, then the fen left over go one
    each to the parts that lost most in rounding (earliest first on ties). Zero
    weights everywhere split evenly. Used for a bundle's price across its parts,
    so a refunded part returns exactly its share and the shares sum to the price.
    """
    if not weights:
        return []
    total = quantize(total)
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    if sum(weights) == 0:
        weights = [Decimal(1)] * len(weights)
    whole = sum(weights)
    cents = int(total / CENT)
    exact = [Decimal(cents) * w / whole for w in weights]
    parts = [int(e) for e in exact]  # floor: all values are non-negative
    leftover = cents - sum(parts)
    by_loss = sorted(range(len(parts)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in by_loss[:leftover]:
        parts[i] += 1
    return [Decimal(p) * CENT for p in parts]
