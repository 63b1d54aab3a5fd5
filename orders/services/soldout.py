"""Checkout's cache-only answers: the sold-out flag, and the order a checkout
token has placed (fulfillment/soldout.py keeps the flag; docs/DECISIONS.md,
"Caching the storefront for flash sales", layer 3)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache

from catalog.models import Sku
from fulfillment.soldout import sold_out_key

logger = logging.getLogger(__name__)


def checkout_known_sold_out(
    *,
    sku: Sku,
    user_id: int | str | None,
    client_token: str,
) -> bool:
    """Whether checkout may answer "sold out" before anything else, for `sku` as the
    caller read it on sale (`catalog_cache.sku_on_sale`).

    That is: a card-code SKU whose sold-out flag is up, for a click whose token
    has placed no order (a double click after the flag goes the long way and
    finds its order). Cache reads only: no SQL, no lock, no write; a cache outage
    answers False (the reservation decides).
    """
    if sku.delivery != Sku.Delivery.CARD_CODE:
        return False
    sold_out, placed = sold_out_or_placed(
        sku_id=sku.id,
        user_id=user_id or 0,
        client_token=client_token if user_id else "",
    )
    return sold_out and not placed


def _placed_key(user_id: int | str, client_token: str) -> str:
    return f"placed:{user_id}:{client_token}"


def placed_remember(user_id: int | str, client_token: str, order_id: int) -> None:
    """After commit: this checkout token made this order (for the sold-out path)."""
    try:
        cache.set(
            _placed_key(user_id, client_token),
            order_id,
            settings.ORDER_PAYMENT_TIMEOUT_MINUTES * 60,
        )
    except Exception:
        logger.warning("placed order not remembered: cache unreachable")


def sold_out_or_placed(
    *, sku_id: int, user_id: int | str, client_token: str
) -> tuple[bool, int | None]:
    """Whether the SKU is flagged sold out, and the order this token already
    placed if any: one cache round trip, no SQL. A cache outage answers
    (False, None): the reservation then decides, as without the flag."""
    keys = [sold_out_key(sku_id)]
    if client_token:
        keys.append(_placed_key(user_id, client_token))
    try:
        found = cache.get_many(keys)
    except Exception:
        logger.warning("sold-out flag unreadable: cache unreachable")
        return False, None
    placed = found.get(keys[-1]) if client_token else None
    return bool(found.get(keys[0])), placed
