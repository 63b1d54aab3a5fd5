"""Reads over the code vault: stock counts and batch summaries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from fulfillment.models import CardCode, CodeBatch


def card_code_stock_counts(
    *, sku_ids: Iterable[int], now: dt.datetime | None = None
) -> dict[int, int]:
    """Sellable codes per SKU (available and not expired), in one grouped query."""
    now = now or timezone.now()
    ids = list(sku_ids)
    if not ids:
        return {}
    rows = (
        CardCode.objects.filter(sku_id__in=ids, status=CardCode.Status.AVAILABLE)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .values("sku_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts = dict.fromkeys(ids, 0)
    counts.update({row["sku_id"]: row["n"] for row in rows})
    return counts


def code_batch_list_with_counts() -> QuerySet[CodeBatch]:
    """Batches with available/reserved/sold counts annotated, for the admin."""
    return CodeBatch.objects.select_related("sku", "created_by").annotate(
        available_count=Count(
            "codes", filter=Q(codes__status=CardCode.Status.AVAILABLE)
        ),
        reserved_count=Count("codes", filter=Q(codes__status=CardCode.Status.RESERVED)),
        sold_count=Count("codes", filter=Q(codes__status=CardCode.Status.SOLD)),
    )


def card_code_list_for_order(*, order_id: int) -> QuerySet[CardCode]:
    return CardCode.objects.filter(order_line__order_id=order_id).order_by(
        "order_line_id", "id"
    )
