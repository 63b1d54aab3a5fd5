"""Filters for the reseller's pages: money with its sign, masked buyers and orders."""

from __future__ import annotations

from decimal import Decimal

from django import template

from distribution.dashboard import mask_email, mask_order_number

register = template.Library()


@register.filter
def yuan(value: Decimal | None) -> str:
    """¥12.30, −¥5.00 (a true minus sign, before the currency)."""
    amount = Decimal(value or 0)
    sign = "−" if amount < 0 else ""
    return f"{sign}¥{abs(amount):.2f}"


@register.filter
def masked_email(value: str) -> str:
    return mask_email(value or "")


@register.filter
def masked_order(value: str) -> str:
    return mask_order_number(value or "")


@register.filter
def percent(rate: Decimal | None) -> str:
    """0.1000 → 10%, 0.0125 → 1.25%."""
    value = (Decimal(rate or 0) * 100).normalize()
    return f"{value:f}%"
