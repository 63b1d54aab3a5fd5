"""Row locks for fulfillment.

Global lock order: User → Order → OrderLine → Sku/stock → CardCode → TopUp → Commission.
Codes are taken with SKIP LOCKED so concurrent buyers never wait on each other:
each takes the next free codes nobody else is holding.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import QuerySet

from fulfillment.models import CardCode
from fulfillment.selectors import sellable_q


def card_codes_claimable_lock_for_update(
    *, sku_id: int, quantity: int, now: dt.datetime
) -> list[int]:
    """Lock up to `quantity` sellable codes of a SKU, first-expiring first.

    The ordering (expires_at, id) matches the partial claim index so the planner
    walks only available rows (docs/performance-notes.md, lesson 3).
    """
    qs: QuerySet[CardCode, int] = (
        CardCode.objects.filter(sellable_q(now=now), sku_id=sku_id)
        .order_by("expires_at", "id")
        .select_for_update(skip_locked=True)
        .values_list("id", flat=True)
    )
    return list(qs[:quantity])


def card_codes_lock_for_update(*, ids: list[int]) -> list[CardCode]:
    return list(CardCode.objects.filter(id__in=ids).order_by("pk").select_for_update())
