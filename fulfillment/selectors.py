"""Reads over the code vault: what is sellable, stock counts, batch summaries.

"Sellable" is defined once here and used by the storefront, the admin and the
claim lock: available, and not expiring before an order placed now could be
paid (so a paid order never receives an expired code).

Supplier reads (fail-over order, top-up capacity) are at the end.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import (
    Aggregate,
    Case,
    Count,
    F,
    FloatField,
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

from fulfillment.models import (
    CardCode,
    CodeBatch,
    Supplier,
    SupplierAttempt,
    SupplierProduct,
    TopUp,
    TopUpEvent,
)


def sellable_cutoff(now: dt.datetime) -> dt.datetime:
    """A sellable code expires after this: the payment window of an order placed at `now`."""
    return now + dt.timedelta(minutes=settings.ORDER_PAYMENT_TIMEOUT_MINUTES)


def sellable_q(*, now: dt.datetime, prefix: str = "") -> Q:
    """Available codes that outlive the payment window of an order placed at `now`."""
    cutoff = sellable_cutoff(now)
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


# --- Top-ups in the admin ---------------------------------------------------------

TOPUP_OPEN_STATUSES = (TopUp.Status.PENDING, TopUp.Status.WORKING, TopUp.Status.WAITING)
TIMELINE_MAX_EVENTS = 300


def topup_list_for_admin() -> QuerySet[TopUp]:
    """Top-ups with their order, SKU, attempt count and current supplier annotated.

    Correlated subqueries rather than a JOIN + GROUP BY: a page costs one query
    whatever the filters (the supplier filter and the search also go through
    attempts, and a join there would multiply the count).
    """
    attempts = SupplierAttempt.objects.filter(topup=OuterRef("pk")).order_by()
    counted = attempts.values("topup").annotate(n=Count("id")).values("n")
    return TopUp.objects.select_related("order_line__order", "sku").annotate(
        attempt_count=Coalesce(Subquery(counted, output_field=IntegerField()), 0),
        current_supplier_name=Subquery(
            attempts.order_by("-id").values("supplier__name")[:1]
        ),
    )


def topup_needs_human_q(*, now: dt.datetime) -> Q:
    """Flagged for a human, or still open past its deadline (the reconcile beat may
    not have flagged it yet): what an operator must look at."""
    return Q(needs_attention=True) | Q(
        status__in=TOPUP_OPEN_STATUSES, deadline_at__lte=now
    )


def topup_attempt_list(*, topup_id: int) -> list[SupplierAttempt]:
    """A top-up's supplier attempts in the order they were made."""
    return list(
        SupplierAttempt.objects.filter(topup_id=topup_id)
        .select_related("supplier", "supplier_product")
        .order_by("id")
    )


def topup_timeline(
    *, topup_id: int, limit: int = TIMELINE_MAX_EVENTS
) -> list[TopUpEvent]:
    """The latest `limit` events of a top-up, oldest first.

    Bounded: a top-up polled for a day with backoff has hundreds of queries, and
    the page only needs the recent ones (the first event is always `created`).
    """
    latest = list(
        TopUpEvent.objects.filter(topup_id=topup_id)
        .select_related("supplier", "attempt")
        .order_by("-created_at", "-id")[:limit]
    )
    latest.reverse()
    return latest


# --- Supplier health ------------------------------------------------------------


@dataclass(frozen=True)
class SupplierHealth:
    """One supplier's requests since a moment: volume, success, latency, last error."""

    supplier_id: int
    requests: int
    succeeded: int
    p50_ms: float | None
    p95_ms: float | None
    last_error: str
    last_error_at: dt.datetime | None

    @property
    def success_rate(self) -> float | None:
        """Successful share of the requests (0..1), None without requests."""
        return self.succeeded / self.requests if self.requests else None


class _PercentileCont(Aggregate):
    """PostgreSQL's percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str, *, fraction: float) -> None:
        # A float we pass ourselves, never input: safe to interpolate.
        super().__init__(expression, fraction=float(fraction))


def _percentile_cont(ordered: list[int], fraction: float) -> float | None:
    """percentile_cont in Python: linear interpolation between the nearest ranks."""
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _percentiles_in_db() -> bool:
    """PostgreSQL computes the percentiles itself; elsewhere (SQLite, the demo) Python does."""
    return connection.vendor == "postgresql"


def _event_error_text(event: TopUpEvent) -> str:
    if event.note:
        return event.note
    reply = event.response if isinstance(event.response, dict) else {}
    if reply.get("code") not in (None, 0):
        return f"{reply.get('code')} {reply.get('message') or ''}".strip()[:200]
    return f"HTTP {event.http_status}" if event.http_status else "no reply"


def supplier_health(*, since: dt.datetime) -> dict[int, SupplierHealth]:
    """Every supplier's top-up requests since `since`: count, success rate, p50/p95
    latency and last error. Suppliers without requests get zeros.

    Three queries whatever the number of suppliers: the supplier ids with their
    last failed request, the counts with percentile_cont, the last errors' rows.
    Without PostgreSQL (the SQLite demo) a fourth reads the window's latencies and
    Python interpolates the same way. Served by the (supplier, created_at) index.
    """
    requests = TopUpEvent.objects.filter(
        kind=TopUpEvent.Kind.REQUEST, created_at__gte=since, supplier__isnull=False
    ).order_by()
    last_failed = (
        requests.filter(supplier=OuterRef("pk"), ok=False)
        .order_by("-created_at", "-id")
        .values("id")[:1]
    )
    last_failed_by_supplier: dict[int, int | None] = dict(
        Supplier.objects.order_by()
        .annotate(last_failed_id=Subquery(last_failed))
        .values_list("id", "last_failed_id")
    )

    aggregates: dict[str, Any] = {
        "n": Count("id"),
        "ok_n": Count("id", filter=Q(ok=True)),
    }
    in_db = _percentiles_in_db()
    if in_db:
        aggregates["p50"] = _PercentileCont("latency_ms", fraction=0.5)
        aggregates["p95"] = _PercentileCont("latency_ms", fraction=0.95)
    rows = {
        row["supplier_id"]: row
        for row in requests.values("supplier_id").annotate(**aggregates)
    }
    if not in_db:
        latencies: dict[int, list[int]] = defaultdict(list)
        for supplier_id, latency in requests.values_list("supplier_id", "latency_ms"):
            if supplier_id is not None and latency is not None:
                latencies[supplier_id].append(latency)
        for supplier_id, values in latencies.items():
            values.sort()
            rows[supplier_id]["p50"] = _percentile_cont(values, 0.5)
            rows[supplier_id]["p95"] = _percentile_cont(values, 0.95)

    failed_ids = [i for i in last_failed_by_supplier.values() if i is not None]
    failures = {
        event.supplier_id: event
        for event in (
            TopUpEvent.objects.filter(pk__in=failed_ids) if failed_ids else []
        )
    }
    health: dict[int, SupplierHealth] = {}
    for supplier_id in last_failed_by_supplier:
        row = rows.get(supplier_id, {})
        failure = failures.get(supplier_id)
        health[supplier_id] = SupplierHealth(
            supplier_id=supplier_id,
            requests=row.get("n", 0),
            succeeded=row.get("ok_n", 0),
            p50_ms=row.get("p50"),
            p95_ms=row.get("p95"),
            last_error=_event_error_text(failure) if failure else "",
            last_error_at=failure.created_at if failure else None,
        )
    return health
