"""Operator admin for the catalog: platforms, validity rules, products, SKUs, bundles.

The SKU list shows sellable stock per row. It is one correlated COUNT per row of
the page (the partial claim index answers it without touching sold rows), so the
changelist costs the same number of queries whatever the page size.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from catalog.models import BundleItem, Platform, Product, Sku, ValidityRule


@admin.register(Platform)
class PlatformAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "account_rule", "is_active", "sort_order")
    list_filter = ("is_active", "account_rule")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}


@admin.register(ValidityRule)
class ValidityRuleAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "duration_days",
        "redeem_by",
        "redeem_within_days",
        "description",
    )
    search_fields = ("name",)

    @admin.display(description=_("说明"))
    def description(self, obj: ValidityRule) -> str:
        return obj.description


class SkuInline(admin.TabularInline):
    model = Sku
    fields = (
        "code",
        "name",
        "delivery",
        "face_value",
        "price",
        "is_active",
        "sort_order",
    )
    extra = 0
    show_change_link = True


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("name", "platform", "slug", "is_active", "sort_order")
    list_filter = ("platform", "is_active")
    list_select_related = ("platform",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    autocomplete_fields = ("platform",)
    inlines = (SkuInline,)


class BundleItemInline(admin.TabularInline):
    model = BundleItem
    fk_name = "bundle"
    fields = ("component", "quantity", "share")
    autocomplete_fields = ("component",)
    extra = 1
