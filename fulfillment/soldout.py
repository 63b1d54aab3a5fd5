"""The sold-out flag: when a card-code SKU is known empty, checkout says so at once.

In a flash sale most buyers arrive after the last code is gone. Without a flag
each of them would open a transaction, lock their user row, insert an order and
its line, find no code (SKIP LOCKED) and roll everything back: thousands of
writes and locks to say "sold out". With it, the first buyer who finds nothing
raises the flag and everyone after is answered from one cache read.

The reservation stays the only source of truth; the flag can only make checkout
say "sold out" early, never sell what is not there. It is kept right by:
- checkout, which raises it after a reservation found no code at all (after the
  rollback, never inside the transaction);
- the release service and the import (codes back in stock), which lower it after
  their transaction commits;
- a short life (SOLD_OUT_FLAG_SECONDS, 2 s by default): whatever a hook missed
  (a reservation rolled back by another error, a code freed by hand in the
  database) is visible again within that moment.
A cache outage reads as "not known sold out": the shopper goes the long way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

logger = logging.getLogger(__name__)


def sold_out_key(sku_id: int) -> str:
    """The flag's cache key (availability reads it with the stock in one round trip)."""
    return f"soldout:{sku_id}"


def sold_out_known(sku_id: int) -> bool:
    """True when a recent reservation found no code for this SKU."""
    try:
        return bool(cache.get(sold_out_key(sku_id)))
    except Exception:
        logger.warning("sold-out flag unreadable: cache unreachable")
        return False


def sold_out_note(sku_id: int) -> None:
    """Raise the flag (call outside any transaction: the reservation was rolled back)."""
    try:
        cache.set(sold_out_key(sku_id), 1, settings.SOLD_OUT_FLAG_SECONDS)
    except Exception:
        logger.warning("sold-out flag not set: cache unreachable")


def sold_out_forget(sku_ids: Iterable[int]) -> None:
    """Lower the flags once the caller's transaction commits (codes are back)."""
    keys = [sold_out_key(i) for i in set(sku_ids)]
    if not keys:
        return

    def forget() -> None:
        try:
            cache.delete_many(keys)
        except Exception:
            logger.warning("sold-out flag not cleared: cache unreachable")

    transaction.on_commit(forget)
