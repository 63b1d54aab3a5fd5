"""Money helpers: CNY with two decimal places, never float."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CURRENCY = "CNY"
CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def quantize(value: Decimal | int | str) -> Decimal:
    """Round to fen, half up, as Chinese gateways do."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def parse_amount(raw: str) -> Decimal | None:
    """Parse a gateway amount like "30.00"; None when it is not a plain 2-place number."""
    try:
        value = Decimal(raw)
    except (InvalidOperation, TypeError, ValueError):
        return None
    if not value.is_finite() or value < 0 or value != value.quantize(CENT):
        return None
    return value.quantize(CENT)


def format_amount(value: Decimal) -> str:
    """The canonical "30.00" form used in gateway payloads."""
    return f"{quantize(value):.2f}"
