"""What every supplier workflow shares: top-ups (topups.py) and card restocks (restock.py).

Both follow one pattern (claim, commit, call, lock, record) under one protocol
(../shared/docs/supplier-protocol.md). The pieces here hold no row and know no
model but Supplier: how a step's call came out, how long to wait before the
next one, which refusals may be retried under the same number, and where the
supplier sends its callbacks.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field

from django.conf import settings
from django.urls import reverse

from fulfillment.models import Supplier
from fulfillment.suppliers import protocol as wire
from fulfillment.suppliers.base import Exchange, SupplierError, SupplierOrder

# Rejections that change nothing at the supplier and pass with a retry under the
# same number (a fresh timestamp and nonce come with every request).
RETRY_SAME_NUMBER = frozenset({wire.TIMESTAMP_OUT_OF_WINDOW, wire.NONCE_REUSED})


@dataclass
class CallResult:
    """One call's outcome: exactly one of `order`, `error`, `not_found` is set."""

    order: SupplierOrder | None = None
    error: SupplierError | None = None
    not_found: bool = False
    exchanges: list[Exchange] = field(default_factory=list)


def lease() -> dt.timedelta:
    """How long one worker may hold a step (its calls time out well within it)."""
    return dt.timedelta(seconds=settings.TOPUP_LEASE_SECONDS)


def placement_grace() -> dt.timedelta:
    """Until then after a placement, a 3003 on query may only mean "not visible yet"."""
    return dt.timedelta(seconds=settings.TOPUP_PLACEMENT_GRACE_SECONDS)


def backoff(n: int, *, base: float, cap: float) -> dt.timedelta:
    """Exponential backoff with up to 50 % jitter, so retries do not march in step."""
    delay = min(cap, base * (2 ** max(n, 0)))
    jitter = delay * secrets.randbelow(500) / 1000
    return dt.timedelta(seconds=delay + jitter)


def notify_url(supplier: Supplier) -> str:
    """Where this supplier posts its callbacks (SUPPLIER_CALLBACK_BASE_URL or SITE_URL)."""
    base = settings.SUPPLIER_CALLBACK_BASE_URL or settings.SITE_URL
    return base.rstrip("/") + reverse(
        "fulfillment:supplier-callback", args=[supplier.name]
    )
