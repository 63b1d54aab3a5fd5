"""Storefront pages: home and product.

The pages a flash sale hits. Each reads the catalog from the process's copy of
the current catalog version and stock from the short-lived stock cache (one
round trip to the shared cache each), and renders its body from a fragment
cached by catalog version, language and what the shopper can see of the stock
(templates: `{% cache ... using="local" %}`). Warm, they ask the database nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.messages import get_messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import get_language

from catalog import cache as catalog_cache
from catalog.models import Sku
from config.lib.pages import PAGE_SECONDS, render_shared
from fulfillment.availability import SkuOffer, sku_offers


def _render_for_visitor(
    request: HttpRequest,
    template: str,
    context: Callable[[], dict[str, Any]],
    *,
    key: str,
    query_ok: bool,
) -> HttpResponse:
    """The whole page, rendered once per `key` for anonymous visitors.

    An anonymous visitor's page differs from another's only by its CSRF token
    (language switch), which is put in per response (config/lib/pages.py).
    Signed-in shoppers, a page with a message to show, and an unexpected query
    string are rendered as usual (`query_ok`: the query string is one the key
    already accounts for). `context()` is asked only when the page is rendered.
    """
    if request.user.is_authenticated or not query_ok or get_messages(request):
        return render(request, template, context())
    return render_shared(request, template, context, key=key)


def home(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    shown, version = catalog_cache.home_shown(now=now)
    key = f"{version}:{get_language()}:{shown}"

    def context() -> dict[str, Any]:
        return {
            "platforms": catalog_cache.platforms_for_home(now=now)[0],
            "fragment_seconds": PAGE_SECONDS,
            "fragment_key": key,
        }

    return _render_for_visitor(
        request, "catalog/home.html", context, key=key, query_ok=not request.GET
    )


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

    Warm: no query. Cold: the product, its SKUs and bundle parts once per catalog
    version and process, and the stock counts once per STOCK_CACHE_SECONDS.
    """
    page = catalog_cache.product_page(slug=slug)
    if page is None:
        raise Http404
    now = timezone.now()
    skus = page.skus_on_sale(now)
    on_sale = {s.id for s in skus}
    offers = sku_offers(
        skus=skus,
        now=now,
        items=[i for i in page.bundle_items if i.bundle_id in on_sale],
        cached=True,
    )
    # Only a code on sale can be selected: anything else picks the default (and
    # cannot grow the fragment cache with made-up values).
    asked = request.GET.get("sku")
    selected = (
        asked
        if any(o.sku.code == asked for o in offers)
        else next(
            (o.sku.code for o in offers if o.can_buy),
            offers[0].sku.code if offers else "",
        )
    )
    # The aside explains each way this page delivers: SKUs sold alone, then bundles.
    alone = {o.sku.delivery for o in offers if o.sku.delivery != Sku.Delivery.BUNDLE}
    shown = tuple((o.sku.id, o.stock_state) for o in offers)
    key = f"{page.version}:{get_language()}:{slug}:{selected}:{shown}"
    return _render_for_visitor(
        request,
        "catalog/product_detail.html",
        lambda: {
            "product": page.product,
            "offers": offers,
            "selected": selected,
            "bundles": [
                {"offer": o, "kinds": _delivered_kinds([o])} for o in offers if o.parts
            ],
            "sells_codes": Sku.Delivery.CARD_CODE in alone,
            "sells_topups": Sku.Delivery.DIRECT_TOPUP in alone,
            "needs_account": Sku.Delivery.DIRECT_TOPUP in _delivered_kinds(offers),
            "fragment_seconds": PAGE_SECONDS,
            "fragment_key": key,
        },
        key=key,
        query_ok=not request.GET
        or (list(request.GET) == ["sku"] and asked == selected),
    )
