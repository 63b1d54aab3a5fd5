"""Storefront pages: home and product."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from catalog import selectors
from catalog.models import Sku
from fulfillment.availability import SkuOffer, sku_offers


def home(request: HttpRequest) -> HttpResponse:
    platforms = selectors.platform_list_for_storefront()
    return render(request, "catalog/home.html", {"platforms": platforms})


def _delivered_kinds(offers: list[SkuOffer]) -> set[str]:
    """How the offered SKUs reach the shopper: codes, top-ups, or both (bundles count their parts)."""
    kinds: set[str] = set()
    for offer in offers:
        if offer.sku.delivery == Sku.Delivery.BUNDLE:
            kinds.update(item.component.delivery for item in offer.parts)
        else:
            kinds.add(offer.sku.delivery)
    return kinds


def product_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """The product with its SKUs, what can be bought of each and how each is delivered.

    Five queries at most: product, SKUs, and availability (bundle parts, code
    counts, supplier capacity), each asked only when some SKU needs it.
    """
    product = selectors.product_get_for_storefront(slug=slug)
    if product is None:
        raise Http404
    offers = sku_offers(skus=selectors.sku_list_for_product(product=product))
    selected = request.GET.get("sku") or next(
        (o.sku.code for o in offers if o.can_buy), offers[0].sku.code if offers else ""
    )
    # The aside explains each way this page delivers: SKUs sold alone, then bundles.
    alone = {o.sku.delivery for o in offers if o.sku.delivery != Sku.Delivery.BUNDLE}
    return render(
        request,
        "catalog/product_detail.html",
        {
            "product": product,
            "offers": offers,
            "selected": selected,
            "bundles": [
                {"offer": o, "kinds": _delivered_kinds([o])} for o in offers if o.parts
            ],
            "sells_codes": Sku.Delivery.CARD_CODE in alone,
            "sells_topups": Sku.Delivery.DIRECT_TOPUP in alone,
            "needs_account": Sku.Delivery.DIRECT_TOPUP in _delivered_kinds(offers),
        },
    )
