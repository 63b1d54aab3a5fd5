"""Storefront pages: home and product."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from catalog import selectors
from fulfillment.availability import sku_offers


def home(request: HttpRequest) -> HttpResponse:
    platforms = selectors.platform_list_for_storefront()
    return render(request, "catalog/home.html", {"platforms": platforms})


def product_detail(request: HttpRequest, slug: str) -> HttpResponse:
    product = selectors.product_get_for_storefront(slug=slug)
    if product is None:
        raise Http404
    offers = sku_offers(skus=selectors.sku_list_for_product(product=product))
    selected = request.GET.get("sku") or next(
        (o.sku.code for o in offers if o.can_buy), offers[0].sku.code if offers else ""
    )
    return render(
        request,
        "catalog/product_detail.html",
        {
            "product": product,
            "offers": offers,
            "selected": selected,
            "needs_account": any(o.sku.delivery != "card_code" for o in offers),
        },
    )
