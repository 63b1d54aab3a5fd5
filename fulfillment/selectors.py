"""Reads over the code vault: what is sellable, stock counts, batch summaries.

"Sellable" is defined once here and used by the storefront, the admin and the
claim lock: available, and not expiring before an order placed now could be
paid (so a paid order never receives an expired code).

Supplier reads (fail-over order, top-up capacity) are at the end.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.conf import settings
from django.db.models import (
    Case,
    Count,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from fulfillment.models import CardCode, CodeBatch, SupplierProduct


def sellable_q(*, now: dt.datetime, prefix: str = "") -> Q:
    """Available codes that outlive the payment window of an order placed at `now`."""
    cutoff = now + dt.timedelta(minutes=settings.ORDER_PAYMENT_TIMEOUT_MINUTES)
    return Q(**{f"{prefix}status": CardCode.Status.AVAILABLE}) & (
        Q(**{f"{prefix}expires_at__isnull": True})
        | Q(**{f"{prefix}expires_at__gt": cutoff})
    )


def card_code_stock_counts(
    *, sku_ids: Iterable[int], now: dt.datetime | None = None
) -> dict[int, int]:
    """Sellable codes per SKU, in one grouped query."""
    now = now or timezone.now()
    ids = list(sku_ids)
    if not ids:
        return {}
    rows = (
        CardCode.objects.filter(sellable_q(now=now), sku_id__in=ids)
        .values("sku_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts = dict.fromkeys(ids, 0)
    counts.update({row["sku_id"]: row["n"] for row in rows})
    return counts


def card_code_stock_annotation(*, now: dt.datetime | None = None) -> Coalesce:
    """Sellable codes of the outer SKU row, for `Sku.objects.annotate(...)` (admin lists)."""
    now = now or timezone.now()
    sellable = (
        CardCode.objects.filter(sellable_q(now=now), sku=OuterRef("pk"))
        .order_by()
        .values("sku")
        .annotate(n=Count("id"))
        .values("n")
    )
    return Coalesce(Subquery(sellable, output_field=IntegerField()), 0)


def _batch_count(status: str) -> Coalesce:
    # A correlated count per batch row, served by the (batch, status) index: the page
    # never aggregates the whole vault.
    counted = (
        CardCode.objects.filter(batch=OuterRef("pk"), status=status)
        .order_by()
        .values("batch")
        .annotate(n=Count("id"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def code_batch_list_with_counts() -> QuerySet[CodeBatch]:
    """Batches with available/reserved/sold counts annotated, for the admin."""
    return CodeBatch.objects.select_related("sku", "created_by").annotate(
        available_count=_batch_count(CardCode.Status.AVAILABLE),
        reserved_count=_batch_count(CardCode.Status.RESERVED),
        sold_count=_batch_count(CardCode.Status.SOLD),
    )


def card_code_exists_for_sku(*, sku_id: int) -> bool:
    """Whether any code was ever imported for this SKU."""
    return CardCode.objects.filter(sku_id=sku_id).exists()


def card_code_list_for_order(*, order_id: int) -> QuerySet[CardCode]:
    return CardCode.objects.filter(order_line__order_id=order_id).order_by(
        "order_line_id", "id"
    )


# --- Suppliers ----------------------------------------------------------------


def supplier_products_for_sku(*, sku_id: int) -> list[SupplierProduct]:
    """The fail-over order for a SKU: enabled mappings of enabled suppliers, best first.

    Order: mappings the supplier last reported usable (not off, not out of
    stock) before the others, then mapping priority, supplier priority (both
    ascending: lower is tried first), lower cost, id. Known-unusable mappings are
    kept at the end rather than dropped: the report may be up to one refresh old,
    and a refused order fails over at the cost of one request, where a missing
    candidate would mean a refund.
    """
    return list(
        SupplierProduct.objects.filter(
            sku_id=sku_id, is_enabled=True, supplier__is_enabled=True
        )
        .select_related("supplier")
        .annotate(
            known_unusable=Case(
                When(
                    Q(supplier_status=SupplierProduct.SupplierStatus.OFF)
                    | Q(supplier_stock=SupplierProduct.SupplierStock.OUT),
                    then=Value(1),
                ),
                default=Value(0),
                output_field=IntegerField(),
            )
        )
        .order_by("known_unusable", "priority", "supplier__priority", "cost", "id")
    )


def topup_capacity_by_sku(*, sku_ids: Iterable[int]) -> dict[int, bool]:
    """Whether some supplier can take an order for each SKU now, in one query.

    True when at least one enabled mapping of an enabled supplier is reported on
    and not out of stock, and its supplier's last known balance covers the cost.
    A supplier never refreshed (status or balance unknown) gives no capacity.
    """
    ids = list(sku_ids)
    if not ids:
        return {}
    able = (
        SupplierProduct.objects.filter(
            sku_id__in=ids,
            is_enabled=True,
            supplier__is_enabled=True,
            supplier_status=SupplierProduct.SupplierStatus.ON,
            supplier__last_balance__isnull=False,
            supplier__last_balance__gte=F("cost"),
        )
        .exclude(supplier_stock=SupplierProduct.SupplierStock.OUT)
        .values_list("sku_id", flat=True)
        .distinct()
        .order_by()
    )
    capacity = dict.fromkeys(ids, False)
    capacity.update(dict.fromkeys(able, True))
    return capacity
