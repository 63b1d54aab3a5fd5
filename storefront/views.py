"""Storefront pages: home and product, and a reseller's sub-store of them.

The pages a flash sale hits. Each reads the catalog from the process's copy of
the current catalog version and stock from the short-lived stock cache (one
round trip to the shared cache each), and renders its body from a fragment
cached by catalog version, language and what the shopper can see of the stock
(templates: `{% cache ... using="local" %}`). Warm, they ask the database nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from django.contrib.messages import get_messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import get_language

from catalog import cache as catalog_cache
from catalog.models import Sku
from config.lib.pages import PAGE_SECONDS, render_shared
from distribution.models import Reseller
from distribution.substore import Substore, prices_key, substore_get, substore_prices
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
    return _product_response(request, slug)


def _asked_quantity(
    raw: str | None, offers: list[SkuOffer], selected: str | None
) -> int | None:
    """The quantity "buy again" asks for (an order page's link), when the selected
    SKU allows it; None otherwise (the page shows the SKU's minimum). Bounded, so
    the fragment cache grows by at most max_per_order keys per SKU."""
    offer = next((o for o in offers if o.sku.code == selected), None)
    if offer is None or raw is None or not raw.isdigit():
        return None
    quantity = int(raw)
    if not offer.sku.min_per_order <= quantity <= offer.sku.max_per_order:
        return None
    return quantity


def _product_response(
    request: HttpRequest, slug: str, *, store: _StoreView | None = None
) -> HttpResponse:
    """The product page, in the shop or (`store`) in a reseller's sub-store."""
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
    store_key = ""
    if store is not None:
        offers, store_key = store.priced(offers)
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
    quantity = _asked_quantity(request.GET.get("qty"), offers, selected)
    # The aside explains each way this page delivers: SKUs sold alone, then bundles.
    alone = {o.sku.delivery for o in offers if o.sku.delivery != Sku.Delivery.BUNDLE}
    shown = tuple((o.sku.id, o.stock_state) for o in offers)
    key = f"{page.version}:{get_language()}:{slug}:{selected}:{quantity}:{shown}{store_key}"
    return _render_for_visitor(
        request,
        "catalog/product_detail.html",
        lambda: {
            "substore": store.store if store is not None else None,
            "product": page.product,
            "offers": offers,
            "selected": selected,
            "quantity": quantity,
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


# --- sub-stores (分站, /s/<store>/) ------------------------------------------


@dataclass(frozen=True)
class _StoreView:
    """A sub-store being shown: its reseller and how it prices the catalog."""

    store: Substore
    reseller: Reseller

    def priced(self, offers: list[SkuOffer]) -> tuple[list[SkuOffer], str]:
        """The offers at the sub-store's prices, and what the page's key must add.

        The catalog's Sku objects are shared by the process (catalog/cache.py):
        each priced offer gets a copy, never a changed original.
        """
        prices = substore_prices(reseller=self.reseller, skus=[o.sku for o in offers])
        priced = []
        for offer in offers:
            sku = copy.copy(offer.sku)
            sku.price = prices[sku.id]
            priced.append(replace(offer, sku=sku))
        return priced, f":s:{self.store.slug}:{self.store.version}:{prices_key(prices)}"


def _store_or_404(store: str) -> _StoreView:
    found = substore_get(slug=store)
    if found is None:
        raise Http404
    return _StoreView(store=found[0], reseller=found[1])


def substore_home(request: HttpRequest, store: str) -> HttpResponse:
    """A reseller's sub-store: their name, announcement and contact, and the shop's
    products (at their prices on each product page). Unknown or closed: 404."""
    view = _store_or_404(store)
    now = timezone.now()
    shown, version = catalog_cache.home_shown(now=now)
    key = f"{version}:{get_language()}:{shown}:s:{view.store.slug}:{view.store.version}"

    def context() -> dict[str, Any]:
        return {
            "substore": view.store,
            "platforms": catalog_cache.platforms_for_home(now=now)[0],
            "fragment_seconds": PAGE_SECONDS,
            "fragment_key": key,
        }

    return _render_for_visitor(
        request,
        "distribution/substore/home.html",
        context,
        key=key,
        query_ok=not request.GET,
    )


def substore_product(request: HttpRequest, store: str, slug: str) -> HttpResponse:
    """A product in a reseller's sub-store, at the sub-store's prices."""
    return _product_response(request, slug, store=_store_or_404(store))
