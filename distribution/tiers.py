"""Reseller prices: pure functions on plain values, no ORM.

A tier's wholesale price for a SKU is its own price for that SKU when the
operator set one, else the retail price less the tier's discount. A sub-store
shows the wholesale price plus the reseller's markup, never below the
operator's minimum resale price (it stops price breaking and 窜货). Prices
round half up to the fen, as the shop's do.
"""

from __future__ import annotations

from decimal import Decimal

from config.lib.money import CENT, quantize


def tier_wholesale_price(
    *, retail: Decimal, discount_rate: Decimal, tier_price: Decimal | None
) -> Decimal:
    """The tier's price for a SKU: its TierPrice, else retail × (1 − discount), ≥ 0.01."""
    if tier_price is not None:
        return quantize(tier_price)
    price = quantize(retail * (Decimal(1) - discount_rate))
    return max(price, CENT)


def substore_price(
    *, wholesale: Decimal, markup_rate: Decimal, minimum: Decimal | None
) -> Decimal:
    """What a sub-store charges: wholesale × (1 + markup), never below the minimum."""
    price = quantize(wholesale * (Decimal(1) + markup_rate))
    if minimum is not None and price < minimum:
        return quantize(minimum)
    return price
