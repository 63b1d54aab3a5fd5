"""Catalog reads: what is on sale. Stock is not the catalog's business (fulfillment.availability)."""

from __future__ import annotations

import datetime as dt

from django.db.models import Prefetch, Q
from django.utils import timezone

from catalog.models import Platform, Product, Sku


def sku_on_sale_q(now: dt.datetime, prefix: str = "") -> Q:
    """Active SKU of an active product and platform, inside its sale window."""
    p = prefix
    return (
        Q(**{f"{p}is_active": True})
        & Q(**{f"{p}product__is_active": True})
        & Q(**{f"{p}product__platform__is_active": True})
        & (
            Q(**{f"{p}sale_starts_at__isnull": True})
            | Q(**{f"{p}sale_starts_at__lte": now})
        )
        & (Q(**{f"{p}sale_ends_at__isnull": True}) | Q(**{f"{p}sale_ends_at__gt": now}))
    )


def platform_list_for_storefront(*, now: dt.datetime | None = None) -> list[Platform]:
    """Active platforms with their products that have something on sale (2 queries)."""
    now = now or timezone.now()
    products = (
        Product.objects.filter(
            is_active=True, skus__in=Sku.objects.filter(sku_on_sale_q(now))
        )
        .distinct()
        .order_by("sort_order", "id")
    )
    platforms = Platform.objects.filter(is_active=True).prefetch_related(
        Prefetch("products", queryset=products, to_attr="products_on_sale")
    )
    return [p for p in platforms if p.products_on_sale]


def product_get_for_storefront(*, slug: str) -> Product | None:
    return (
        Product.objects.select_related("platform")
        .filter(slug=slug, is_active=True, platform__is_active=True)
        .first()
    )


def sku_list_for_product(
    *, product: Product, now: dt.datetime | None = None
) -> list[Sku]:
    """The product's SKUs on sale now (1 query)."""
    now = now or timezone.now()
    return list(
        Sku.objects.filter(sku_on_sale_q(now), product=product).select_related(
            "validity_rule"
        )
    )


def sku_get_on_sale(*, code: str, now: dt.datetime | None = None) -> Sku | None:
    """One SKU on sale now, by its code (no stock count: checkout reserves instead)."""
    now = now or timezone.now()
    return (
        Sku.objects.filter(sku_on_sale_q(now), code=code)
        .select_related("product", "product__platform", "validity_rule")
        .first()
    )
