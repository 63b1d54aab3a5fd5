"""What can be sold right now, per delivery kind (catalog itself knows nothing of stock).

- Card codes: sellable codes in the vault (fulfillment.selectors).
- Top-ups: no count; sellable while some enabled supplier mapping can take the
  order (supplier enabled, product on, balance known and enough for our cost).
- Bundles: the fewest complete bundles their parts allow.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from catalog.models import BundleItem, Sku
from fulfillment.selectors import card_code_stock_counts, topup_capacity_by_sku
from fulfillment.soldout import sold_out_key

logger = logging.getLogger(__name__)

STOCK_IN = "in_stock"
STOCK_LOW = "low"
STOCK_OUT = "sold_out"


@dataclass(frozen=True)
class Availability:
    # How many can be sold now; None when there is no count (a top-up the
    # supplier can take: as many as the per-order limit allows).
    available: int | None
    state: str

    @property
    def can_buy(self) -> bool:
        return self.state != STOCK_OUT

    def covers(self, quantity: int) -> bool:
        return self.can_buy and (self.available is None or self.available >= quantity)


def stock_state(*, available: int, low_threshold: int) -> str:
    if available <= 0:
        return STOCK_OUT
    if available <= low_threshold:
        return STOCK_LOW
    return STOCK_IN


def sku_availability(
    *, skus: list[Sku], now: dt.datetime | None = None
) -> dict[int, Availability]:
    """Availability for each SKU, in at most three queries whatever their number.

    Raises nothing: a SKU of an unknown kind is sold out.
    """
    return _availability_and_parts(skus=skus, now=now)[0]


def _bundle_items(skus: list[Sku]) -> list[BundleItem]:
    bundles = [s.id for s in skus if s.delivery == Sku.Delivery.BUNDLE]
    # Components come with their product and platform: the product page lists a
    # bundle's parts from these very rows rather than asking again.
    return (
        list(
            BundleItem.objects.filter(bundle_id__in=bundles)
            .select_related("component__product__platform")
            .order_by("id")
        )
        if bundles
        else []
    )


def _availability_and_parts(
    *,
    skus: list[Sku],
    now: dt.datetime | None,
    items: list[BundleItem] | None = None,
) -> tuple[dict[int, Availability], list[BundleItem]]:
    now = now or timezone.now()
    if items is None:
        items = _bundle_items(skus)
    everything = {s.id: s for s in skus} | {i.component_id: i.component for i in items}
    codes = card_code_stock_counts(
        sku_ids=[
            i for i, s in everything.items() if s.delivery == Sku.Delivery.CARD_CODE
        ],
        now=now,
    )
    topups = topup_capacity_by_sku(
        sku_ids=[
            i for i, s in everything.items() if s.delivery == Sku.Delivery.DIRECT_TOPUP
        ]
    )

    def single(sku: Sku) -> Availability:
        if sku.delivery == Sku.Delivery.CARD_CODE:
            n = codes.get(sku.id, 0)
            return Availability(
                n, stock_state(available=n, low_threshold=sku.low_stock_threshold)
            )
        if sku.delivery == Sku.Delivery.DIRECT_TOPUP:
            return Availability(None, STOCK_IN if topups.get(sku.id) else STOCK_OUT)
        return Availability(0, STOCK_OUT)

    result: dict[int, Availability] = {}
    for sku in skus:
        if sku.delivery != Sku.Delivery.BUNDLE:
            result[sku.id] = single(sku)
            continue
        parts = [i for i in items if i.bundle_id == sku.id]
        result[sku.id] = _bundle(
            sku, [(single(i.component), i.quantity) for i in parts]
        )
    return result, items


def _bundle(sku: Sku, parts: list[tuple[Availability, int]]) -> Availability:
    if not parts or any(not a.can_buy for a, _qty in parts):
        return Availability(0, STOCK_OUT)
    counted = [a.available // qty for a, qty in parts if a.available is not None]
    if not counted:
        return Availability(None, STOCK_IN)
    n = min(counted)
    return Availability(
        n, stock_state(available=n, low_threshold=sku.low_stock_threshold)
    )


@dataclass(frozen=True)
class SkuOffer:
    """A SKU on sale with what can be sold of it now: what the storefront shows."""

    sku: Sku
    availability: Availability
    # A bundle's parts (component, product and platform loaded); empty otherwise.
    parts: tuple[BundleItem, ...] = ()

    @property
    def can_buy(self) -> bool:
        return self.availability.can_buy

    @property
    def stock_state(self) -> str:
        return self.availability.state

    @property
    def available(self) -> int | None:
        return self.availability.available


def sku_offers(
    *,
    skus: list[Sku],
    now: dt.datetime | None = None,
    items: list[BundleItem] | None = None,
    cached: bool = False,
) -> list[SkuOffer]:
    """Each SKU with its availability (and a bundle's parts), in the order given.

    `items`: the bundles' parts when the caller has them (catalog/cache.py).
    `cached`: read availability through the short-lived stock cache (pages a rush
    hits); checkout's reservation stays the only judge of what can be sold.
    """
    if items is None:
        items = _bundle_items(skus)
    if cached:
        found = _availability_cached(skus=skus, now=now, items=items)
    else:
        found = _availability_and_parts(skus=skus, now=now, items=items)[0]
    return [
        SkuOffer(
            sku=s,
            availability=found[s.id],
            parts=tuple(i for i in items if i.bundle_id == s.id),
        )
        for s in skus
    ]


def _stock_key(sku_id: int) -> str:
    return f"stock:{sku_id}"


def _availability_cached(
    *, skus: list[Sku], now: dt.datetime | None, items: list[BundleItem]
) -> dict[int, Availability]:
    """Availability from the shared cache, counted again at most every
    STOCK_CACHE_SECONDS per SKU (one cache round trip when warm).

    A SKU flagged sold out by checkout (soldout.py) shows sold out at once. A cache
    outage falls back to counting: slower, never wrong.
    """
    keys = {s.id: _stock_key(s.id) for s in skus}
    flags = {
        s.id: sold_out_key(s.id) for s in skus if s.delivery == Sku.Delivery.CARD_CODE
    }
    try:
        hits = cache.get_many([*keys.values(), *flags.values()])
    except Exception:
        logger.warning("stock cache unreachable: counting")
        return _availability_and_parts(skus=skus, now=now, items=items)[0]
    found: dict[int, Availability] = {}
    for sku in skus:
        if hits.get(flags.get(sku.id, "")):
            found[sku.id] = Availability(0, STOCK_OUT)
        elif keys[sku.id] in hits:
            available, state = hits[keys[sku.id]]
            found[sku.id] = Availability(available, state)
    missing = [s for s in skus if s.id not in found]
    if missing:
        counted = _availability_and_parts(skus=missing, now=now, items=items)[0]
        found.update(counted)
        try:
            cache.set_many(
                {keys[i]: (a.available, a.state) for i, a in counted.items()},
                settings.STOCK_CACHE_SECONDS,
            )
        except Exception:
            logger.warning("stock cache unreachable: not stored")
    return found
