"""The catalog as the storefront reads it: cached per catalog version.

A flash sale refreshes one product page thousands of times a second while the
catalog itself changes a few times a day. So:

- The shared cache (Redis in production) holds one value, the catalog *version*:
  a random token replaced whenever a platform, validity rule, product, SKU or
  bundle item is saved or deleted (signals below; again after the transaction
  commits, so no reader can file the old rows under the new token). A token,
  not a counter: when the cache is emptied the new token can never meet an
  entry filed under an old one.
- Each process keeps what it read from the database in its own memory (the
  `local` cache alias), keyed by the version: one round trip to Redis per request
  tells whether that copy is still the catalog. Nothing here is stock: stock is
  fulfillment's (fulfillment.availability), cached for seconds, not versions.
- Sale windows are applied in Python at each request (`on_sale_now`), so a
  flash sale opens at its second, not when a cache entry happens to expire.

`QuerySet.update()` and raw SQL on catalog tables bypass the signals: call
`catalog_changed()` after them.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache, caches
from django.db import transaction
from django.db.models import Prefetch
from django.db.models.signals import post_delete, post_save

from catalog.models import BundleItem, Platform, Product, Sku, ValidityRule

logger = logging.getLogger(__name__)

VERSION_KEY = "catalog:version"
# Entries of one version stay at most this long in a process (they are only
# memory: a newer version never reads them).
LOCAL_SECONDS = 600


def _local() -> Any:
    return caches["local"]


# A version the caller already read, for the rest of its request (see below).
_pinned: ContextVar[str | None] = ContextVar("catalog_version_pinned", default=None)


def catalog_version() -> str:
    """The current catalog version token (created if the cache has none).

    With the shared cache down, a fresh token per call: every read goes to the
    database, which is slower but never stale. Inside `catalog_version_pinned`
    the version given there, without asking the cache.
    """
    pinned = _pinned.get()
    if pinned is not None:
        return pinned
    try:
        version = cache.get(VERSION_KEY)
        if version is None:
            cache.add(VERSION_KEY, secrets.token_hex(8), None)
            version = cache.get(VERSION_KEY)
    except Exception:
        logger.warning("catalog version unavailable: cache unreachable")
        return "nocache-" + secrets.token_hex(8)
    return str(version or "nocache-" + secrets.token_hex(8))


@contextmanager
def catalog_version_pinned(version: str | None) -> Iterator[None]:
    """Within the block, `catalog_version()` answers `version` (None: as usual).

    For a request that read the version together with other keys in one round
    trip (the sold-out answer, orders/views.py checkout): the version it read a moment
    ago is as current as a second read would be, and costs no second trip.
    """
    token = _pinned.set(version)
    try:
        yield
    finally:
        _pinned.reset(token)


def catalog_changed() -> None:
    """Retire every cached copy of the catalog (now and again after commit).

    The first bump is a write to our own Redis on loopback, not a call to another
    party, and holds no lock anyone waits on; it makes the change visible to the
    writer's own requests (and to tests, whose transactions never commit). The
    second, after commit, is the one that counts for everyone else: a reader who
    cached the old rows under the first token meanwhile never sees them again.
    """

    def bump() -> None:
        try:
            cache.set(VERSION_KEY, secrets.token_hex(8), None)
        except Exception:
            logger.warning("catalog version not bumped: cache unreachable")

    bump()
    transaction.on_commit(bump)


def _changed(sender: type, **kwargs: Any) -> None:
    if kwargs.get("raw"):  # loaddata
        return
    catalog_changed()


for _model in (Platform, ValidityRule, Product, Sku, BundleItem):
    post_save.connect(_changed, sender=_model, dispatch_uid=f"catalog-cache-{_model}")
    post_delete.connect(
        _changed, sender=_model, dispatch_uid=f"catalog-cache-del-{_model}"
    )


def on_sale_now(sku: Sku, now: dt.datetime) -> bool:
    """Python twin of selectors.sku_on_sale_q for a SKU whose product and platform
    were loaded active (the snapshots below only hold those)."""
    return sku.is_on_sale(now)


@dataclass(frozen=True)
class ProductPage:
    """A product with its active SKUs (any sale window) and its bundles' parts."""

    product: Product
    skus: tuple[Sku, ...]
    bundle_items: tuple[BundleItem, ...]
    # The catalog version this copy belongs to (keys page fragments built from it).
    version: str

    def skus_on_sale(self, now: dt.datetime) -> list[Sku]:
        return [s for s in self.skus if on_sale_now(s, now)]


def _cached(key: str, build: Any) -> Any:
    """The value under `key` for the current catalog version, built on a miss.

    `build(version)` reads the database.
    """
    local = _local()
    version = catalog_version()
    full = f"{version}:{key}"
    found = local.get(full, _MISSING)
    if found is not _MISSING:
        return found
    value = build(version)
    local.set(full, value, LOCAL_SECONDS)
    return value


_MISSING = object()


def product_page(*, slug: str) -> ProductPage | None:
    """The product page's catalog part; None for an unknown or inactive product."""

    def build(version: str) -> ProductPage | None:
        product = (
            Product.objects.select_related("platform")
            .filter(slug=slug, is_active=True, platform__is_active=True)
            .first()
        )
        if product is None:
            return None
        skus = tuple(
            Sku.objects.filter(product=product, is_active=True).select_related(
                "validity_rule"
            )
        )
        bundles = [s.id for s in skus if s.delivery == Sku.Delivery.BUNDLE]
        items = (
            tuple(
                BundleItem.objects.filter(bundle_id__in=bundles)
                .select_related("component__product__platform")
                .order_by("id")
            )
            if bundles
            else ()
        )
        return ProductPage(
            product=product, skus=skus, bundle_items=items, version=version
        )

    return _cached(f"product:{slug}", build)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class HomeEntry:
    platform: Platform
    # Each product with the sale windows of its active SKUs: (starts, ends) pairs.
    products: tuple[tuple[Product, tuple[tuple[Any, Any], ...]], ...]


@dataclass(frozen=True)
class Home:
    entries: tuple[HomeEntry, ...]
    version: str


def home_entries() -> Home:
    """Active platforms with their active products and their SKUs' sale windows."""

    def build(version: str) -> Home:
        skus = Sku.objects.filter(is_active=True).only(
            "id", "product_id", "is_active", "sale_starts_at", "sale_ends_at"
        )
        products = Product.objects.filter(is_active=True).order_by("sort_order", "id")
        platforms = Platform.objects.filter(is_active=True).prefetch_related(
            Prefetch("products", queryset=products, to_attr="active_products"),
            Prefetch("active_products__skus", queryset=skus, to_attr="active_skus"),
        )
        entries = tuple(
            HomeEntry(
                platform=p,
                products=tuple(
                    (
                        prod,
                        tuple(
                            (s.sale_starts_at, s.sale_ends_at)
                            for s in prod.active_skus  # type: ignore[attr-defined]
                        ),
                    )
                    for prod in p.active_products
                ),
            )
            for p in platforms
        )
        return Home(entries=entries, version=version)

    return _cached("home", build)  # type: ignore[no-any-return]


def platforms_for_home(*, now: dt.datetime) -> tuple[list[Platform], str]:
    """What home lists: platforms with the products that have a SKU on sale now,
    and the catalog version they come from.

    Same answer as selectors.platform_list_for_storefront, from the cached copy.
    """

    def open_now(window: tuple[Any, Any]) -> bool:
        starts, ends = window
        return (starts is None or starts <= now) and (ends is None or ends > now)

    home = home_entries()
    shown = []
    for entry in home.entries:
        products = [p for p, windows in entry.products if any(map(open_now, windows))]
        if products:
            entry.platform.products_on_sale = products  # type: ignore[attr-defined]
            shown.append(entry.platform)
    return shown, home.version


def home_shown(*, now: dt.datetime) -> tuple[tuple[int, ...], str]:
    """The ids of the products home lists now, and the catalog version: what
    keys the cached home page, without loading the platforms (a small memo kept
    until the next sale window opens or closes)."""
    local = _local()
    version = catalog_version()
    key = f"{version}:home-shown"
    memo = local.get(key)
    if memo is not None and now < memo[1]:
        return memo[0], version
    entries = home_entries().entries
    boundaries = [
        edge
        for entry in entries
        for _product, windows in entry.products
        for window in windows
        for edge in window
        if edge is not None and edge > now
    ]
    platforms, _ = platforms_for_home(now=now)
    shown = tuple(
        p.id
        for platform in platforms
        for p in platform.products_on_sale  # type: ignore[attr-defined]
    )
    until = min(boundaries, default=now + dt.timedelta(seconds=LOCAL_SECONDS))
    local.set(key, (shown, until), LOCAL_SECONDS)
    return shown, version


# The SKUs `sku_on_sale` read, for one catalog version: (version, {code: (SKU or
# None, monotonic time it expires)}). A plain dict, not the `local` cache: that
# one pickles, so every request unpickled a fresh copy (~40 Python calls); here
# every request of the process gets the same objects. So **no caller may change
# a SKU it is given, nor its product, platform or validity rule** (a sub-store's
# price goes on a copy: orders/views.py, storefront/views.py);
# tests/conftest.py checks after every test that the objects handed out are
# unchanged. Entries keep the local cache's rules: filed under the version read
# before the database, at most LOCAL_SECONDS old, bounded in number (a client
# can POST any code; unknown ones are kept as None like the others).
SKU_MEMO_SIZE = 1024
_sku_memo: tuple[str, dict[str, tuple[Sku | None, float]]] = ("", {})


def _sku_read(code: str) -> Sku | None:
    return (
        Sku.objects.filter(
            code=code,
            is_active=True,
            product__is_active=True,
            product__platform__is_active=True,
        )
        .select_related("product", "product__platform", "validity_rule")
        .first()
    )


def sku_on_sale(*, code: str, now: dt.datetime) -> Sku | None:
    """selectors.sku_get_on_sale from the process's copy (product, platform and
    rule loaded). The object is shared: read it, never change it (above)."""
    global _sku_memo
    version = catalog_version()
    memo_version, memo = _sku_memo
    if memo_version != version:
        memo = {}
        _sku_memo = (version, memo)
    clock = time.monotonic()
    found = memo.get(code)
    if found is not None and found[1] > clock:
        sku = found[0]
    else:
        sku = _sku_read(code)
        if len(memo) >= SKU_MEMO_SIZE:
            memo.clear()
        memo[code] = (sku, clock + LOCAL_SECONDS)
    if sku is None or not on_sale_now(sku, now):
        return None
    return sku
