"""The SKU admin, with stock beside each SKU: the catalog as the vault sees it.

Registered here, not in catalog/admin.py, because catalog knows nothing of stock.
The SKU list shows sellable stock per row. It is one correlated COUNT per row of
the page (the partial claim index answers it without touching sold rows), so the
changelist costs the same number of queries whatever the page size.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import admin
from django.db.models import F, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from catalog.admin import BundleItemInline
from catalog.models import Sku
from fulfillment.availability import STOCK_IN, STOCK_LOW, STOCK_OUT, stock_state
from fulfillment.forms import SkuAdminForm
from fulfillment.selectors import card_code_stock_annotation

STOCK_LABELS = {
    STOCK_OUT: _("售罄"),
    STOCK_LOW: _("低库存"),
    STOCK_IN: _("充足"),
}
STOCK_COLORS = {STOCK_OUT: "#ba2121", STOCK_LOW: "#c77c02", STOCK_IN: "#417690"}
# Shown only to holders of catalog.view_sku_stock (Operators have it).
STOCK_COLUMNS = ("stock", "stock_flag")


class StockStateFilter(admin.SimpleListFilter):
    """Sold out / low / in stock, on the page query's stock annotation (card-code SKUs)."""

    title = _("库存状态")
    parameter_name = "stock"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(STOCK_LABELS.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[Sku]) -> QuerySet[Sku]:
        # Q objects: `stock_available` is the admin queryset's annotation, not a field.
        wanted = {
            STOCK_OUT: Q(stock_available__lte=0),
            STOCK_LOW: Q(stock_available__gt=0)
            & Q(stock_available__lte=F("low_stock_threshold")),
            STOCK_IN: Q(stock_available__gt=F("low_stock_threshold")),
        }.get(self.value() or "")
        if wanted is None:
            return queryset
        return queryset.filter(wanted, delivery=Sku.Delivery.CARD_CODE)


@admin.register(Sku)
class SkuAdmin(admin.ModelAdmin):
    form = SkuAdminForm
    # Stock first after the identity: it is what operators open this list for.
    list_display = (
        "code",
        "name",
        "stock",
        "stock_flag",
        "price",
        "face_value",
        "product",
        "delivery",
        "is_active",
        "sale_window",
    )
    list_filter = ("delivery", "is_active", StockStateFilter, "product__platform")
    list_select_related = ("product",)
    search_fields = ("code", "name")
    autocomplete_fields = ("product", "validity_rule")
    fieldsets = (
        (None, {"fields": ("product", "code", "name", "delivery", "validity_rule")}),
        (_("价格"), {"fields": ("face_value", "price")}),
        (
            _("销售"),
            {
                "fields": (
                    "is_active",
                    ("sale_starts_at", "sale_ends_at"),
                    ("min_per_order", "max_per_order"),
                    "low_stock_threshold",
                    "self_refund_hours",
                    "sort_order",
                )
            },
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Sku]:
        qs: QuerySet[Sku] = super().get_queryset(request)
        return qs.annotate(stock_available=card_code_stock_annotation())

    def get_list_display(self, request: HttpRequest) -> Any:
        if request.user.has_perm("catalog.view_sku_stock"):
            return self.list_display
        return tuple(f for f in self.list_display if f not in STOCK_COLUMNS)

    def get_list_filter(self, request: HttpRequest) -> Any:
        if request.user.has_perm("catalog.view_sku_stock"):
            return self.list_filter
        return tuple(f for f in self.list_filter if f is not StockStateFilter)

    def get_readonly_fields(self, request: HttpRequest, obj: Sku | None = None) -> Any:
        # SKU codes are stable identifiers for commands and the partner API (SPEC §2).
        return ("code",) if obj is not None else ()

    def get_inlines(self, request: HttpRequest, obj: Sku | None) -> Any:
        # Components only make sense on a saved bundle SKU.
        if obj is not None and obj.delivery == Sku.Delivery.BUNDLE:
            return (BundleItemInline,)
        return ()

    @admin.display(description=_("销售时段"))
    def sale_window(self, obj: Sku) -> str:
        if not obj.sale_starts_at and not obj.sale_ends_at:
            return "—"
        start = self._when(obj.sale_starts_at) if obj.sale_starts_at else "…"
        end = self._when(obj.sale_ends_at) if obj.sale_ends_at else "…"
        return f"{start} → {end}"

    @admin.display(description=_("可售库存"), ordering="stock_available")
    def stock(self, obj: Sku) -> int | str:
        if obj.delivery != Sku.Delivery.CARD_CODE:
            return "—"
        return int(obj.stock_available)  # type: ignore[attr-defined]

    @admin.display(description=_("库存状态"))
    def stock_flag(self, obj: Sku) -> str:
        if obj.delivery != Sku.Delivery.CARD_CODE:
            return "—"
        state = stock_state(
            available=obj.stock_available,  # type: ignore[attr-defined]
            low_threshold=obj.low_stock_threshold,
        )
        return format_html(
            '<span style="color: {}; font-weight: bold">{}</span>',
            STOCK_COLORS[state],
            STOCK_LABELS[state],
        )

    @staticmethod
    def _when(value: dt.datetime) -> str:
        return date_format(timezone.localtime(value), "SHORT_DATETIME_FORMAT")
