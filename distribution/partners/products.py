"""The partner API's catalog: what is on sale, at this partner's tier price."""

from __future__ import annotations

import datetime as dt
from typing import TypedDict

from django.utils import timezone

from catalog.models import Sku
from catalog.selectors import sku_on_sale_q
from config.lib.money import format_amount
from distribution.models import Reseller
from distribution.partners.pricing import partner_prices
from fulfillment.availability import SkuOffer, sku_offers


class ProductReply(TypedDict):
    sku: str
    name: str
    platform: str
    delivery: str
    price: str
    face_value: str
    in_stock: bool
    account_rule: str | None


def _needs_account(offer: SkuOffer) -> bool:
    if offer.sku.delivery == Sku.Delivery.DIRECT_TOPUP:
        return True
    return any(
        part.component.delivery == Sku.Delivery.DIRECT_TOPUP for part in offer.parts
    )


def partner_product_list(
    *, reseller: Reseller, now: dt.datetime | None = None
) -> list[ProductReply]:
    """Every SKU on sale now with this reseller's tier price and whether it can be bought.

    `account_rule` (phone, qq, email, any) is set where an order needs a
    `recharge_account`, null otherwise. Stock comes from the short-lived stock
    cache, as the storefront's pages do; the order's reservation decides.
    """
    now = now or timezone.now()
    skus = list(
        Sku.objects.filter(sku_on_sale_q(now))
        .select_related("product__platform")
        .order_by(
            "product__platform__sort_order",
            "product__sort_order",
            "sort_order",
            "id",
        )
    )
    prices = partner_prices(reseller=reseller, skus=skus)
    return [
        ProductReply(
            sku=offer.sku.code,
            name=f"{offer.sku.product.name} {offer.sku.name}",
            platform=offer.sku.product.platform.name,
            delivery=offer.sku.delivery,
            price=format_amount(prices[offer.sku.id]),
            face_value=format_amount(offer.sku.face_value),
            in_stock=offer.can_buy,
            account_rule=offer.sku.product.platform.account_rule
            if _needs_account(offer)
            else None,
        )
        for offer in sku_offers(skus=skus, now=now, cached=True)
    ]
