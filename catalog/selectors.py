"""Storefront reads: what is for sale, with stock state, in a fixed number of queries."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from catalog.models import Platform, Product, Sku
from fulfillment.selectors import card_code_stock_counts

STOCK_IN = "in_stock"
STOCK_LOW = "low"
STOCK_OUT = "sold_out"


@dataclass(frozen=True)
class SkuOffer:
    sku: Sku
    available: int
    stock_state: str

    @property
    def can_buy(self) -> bool:
        return self.stock_state != STOCK_OUT


def stock_state(*, available: int, low_threshold: int) -> str:
    if available <= 0:
        return STOCK_OUT
    if available <= low_threshold:
        return STOCK_LOW
    return STOCK_IN


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


def sku_offers_for_product(
    *, product: Product, now: dt.datetime | None = None
) -> list[SkuOffer]:
    """The product's SKUs on sale now, with stock state (2 queries)."""
    now = now or timezone.now()
    skus = list(
        Sku.objects.filter(sku_on_sale_q(now), product=product).select_related(
            "validity_rule"
        )
    )
    return _offers(skus, now)


def sku_get_on_sale(*, code: str, now: dt.datetime | None = None) -> Sku | None:
    """One SKU on sale now, by its code (no stock count: checkout reserves instead)."""
    now = now or timezone.now()
    return (
        Sku.objects.filter(sku_on_sale_q(now), code=code)
        .select_related("product", "product__platform", "validity_rule")
        .first()
    )


def sku_offer_get(*, code: str, now: dt.datetime | None = None) -> SkuOffer | None:
    """One SKU on sale now, by its code, with stock; None when not for sale."""
    now = now or timezone.now()
    sku = sku_get_on_sale(code=code, now=now)
    if sku is None:
        return None
    return _offers([sku], now)[0]


def _offers(skus: list[Sku], now: dt.datetime) -> list[SkuOffer]:
    card_skus = [s.id for s in skus if s.delivery == Sku.Delivery.CARD_CODE]
    counts = card_code_stock_counts(sku_ids=card_skus, now=now)
    return [
        SkuOffer(
            sku=s,
            available=counts.get(s.id, 0),
            stock_state=stock_state(
                available=counts.get(s.id, 0), low_threshold=s.low_stock_threshold
            ),
        )
        for s in skus
    ]


def sku_list_with_stock() -> QuerySet[Sku]:
    return Sku.objects.select_related("product", "product__platform")
