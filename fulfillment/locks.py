"""Row locks for fulfillment.

Global lock order: User → Order → OrderLine → Sku/stock → CardCode → TopUp → Commission.
Codes are taken with SKIP LOCKED so concurrent buyers never wait on each other:
each takes the next free codes nobody else is holding.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import connection

from fulfillment.models import CardCode
from fulfillment.selectors import sellable_cutoff

AVAILABLE = CardCode.Status.AVAILABLE.value  # a constant, written into the SQL


def card_codes_claim_sql(
    *, sku_id: int, quantity: int, now: dt.datetime
) -> tuple[str, list[Any]]:
    """The claim: up to `quantity` sellable codes of a SKU, first-expiring first,
    locked SKIP LOCKED (where the database can). SQL and its parameters.

    The same conditions as `selectors.sellable_q`, written out: the claim runs on
    every checkout, and as a subquery of the reserving UPDATE (services/codes.py).
    The ordering (expires_at, id) matches the partial claim index so the planner
    walks only available rows (docs/performance-notes.md, lesson 3).
    """
    features = connection.features
    lock = (
        " FOR UPDATE SKIP LOCKED" if features.has_select_for_update_skip_locked else ""
    )
    table = connection.ops.quote_name(CardCode._meta.db_table)
    # The status is written in the SQL, not passed as a value: the claim index
    # is partial (status = 'available'), and a prepared statement's generic
    # plan (config/lib/prepared.py) cannot use it for `"status" = $2` (it
    # sorted every free code of the SKU instead: docs/PERFORMANCE.md, session 6).
    return (
        f'SELECT "id" FROM {table}'  # noqa: S608 (the model's table, a constant)
        f' WHERE "sku_id" = %s AND "status" = \'{AVAILABLE}\''
        ' AND ("expires_at" IS NULL OR "expires_at" > %s)'
        f' ORDER BY "expires_at", "id" LIMIT {int(quantity)}{lock}',
        [
            sku_id,
            connection.ops.adapt_datetimefield_value(sellable_cutoff(now)),
        ],
    )


def card_codes_claimable_lock_for_update(
    *, sku_id: int, quantity: int, now: dt.datetime
) -> list[int]:
    """Lock up to `quantity` sellable codes of a SKU, first-expiring first (the claim)."""
    sql, params = card_codes_claim_sql(sku_id=sku_id, quantity=quantity, now=now)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def card_codes_lock_for_update(*, ids: list[int]) -> list[CardCode]:
    return list(CardCode.objects.filter(id__in=ids).order_by("pk").select_for_update())
