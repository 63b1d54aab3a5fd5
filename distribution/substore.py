"""Sub-stores (分站, /s/<slug>/): which reseller's store a slug names, and its prices.

A sub-store shows the shop's own catalog at the reseller's prices: their tier's
wholesale price plus their markup, never below the operator's minimum resale
price for the SKU (distribution/tiers.py, pure). Only an approved reseller with
a slug has one. Checkout recomputes the price here from the slug the form
carries; the price is never taken from the client.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.utils.translation import gettext_lazy as _

from catalog.models import Sku
from config.lib.errors import DomainError
from config.lib.money import ZERO
from distribution.models import MinimumResalePrice, Reseller, TierPrice
from distribution.tiers import substore_price, tier_wholesale_price

ERR_SUBSTORE_GONE = _("该分站不存在或已关闭，价格已按本站售价显示，请确认后再下单")
SUBSTORE_SLUG_MAX = 40


class SubstoreError(DomainError):
    """A sub-store that is unknown or closed: nothing can be bought there."""

    code = "substore_unavailable"


@dataclass(frozen=True)
class Substore:
    """What a sub-store page shows of its reseller (plain values: safe to cache)."""

    reseller_id: int
    slug: str
    name: str
    announcement: str
    contact: str
    referral_code: str
    # A digest of what the banner shows: part of the cached pages' keys.
    version: str


def substore_get(*, slug: str) -> tuple[Substore, Reseller] | None:
    """The sub-store at `slug` with its reseller (tier loaded); None: unknown or closed."""
    if not slug or len(slug) > SUBSTORE_SLUG_MAX:
        return None
    reseller = (
        Reseller.objects.select_related("tier")
        .filter(substore_slug=slug, status=Reseller.Status.APPROVED)
        .first()
    )
    if reseller is None:
        return None
    name = reseller.substore_name or reseller.referral_code
    shown = f"{name}\0{reseller.substore_announcement}\0{reseller.substore_contact}"
    store = Substore(
        reseller_id=reseller.pk,
        slug=slug,
        name=name,
        announcement=reseller.substore_announcement,
        contact=reseller.substore_contact,
        referral_code=reseller.referral_code,
        version=hashlib.blake2b(shown.encode(), digest_size=8).hexdigest(),
    )
    return store, reseller


def substore_prices(*, reseller: Reseller, skus: Iterable[Sku]) -> dict[int, Decimal]:
    """Each SKU's sub-store price for this reseller, by SKU id (two queries at most)."""
    skus = list(skus)
    ids = [sku.id for sku in skus]
    tier = reseller.tier
    tier_prices: dict[int, Decimal] = (
        dict(
            TierPrice.objects.filter(tier_id=tier.pk, sku_id__in=ids).values_list(
                "sku_id", "price"
            )
        )
        if tier is not None and ids
        else {}
    )
    minimums: dict[int, Decimal] = (
        dict(
            MinimumResalePrice.objects.filter(sku_id__in=ids).values_list(
                "sku_id", "price"
            )
        )
        if ids
        else {}
    )
    return {
        sku.id: substore_price(
            wholesale=tier_wholesale_price(
                retail=sku.price,
                discount_rate=tier.discount_rate if tier is not None else ZERO,
                tier_price=tier_prices.get(sku.id),
            ),
            markup_rate=reseller.markup_rate,
            minimum=minimums.get(sku.id),
        )
        for sku in skus
    }


def reseller_wholesale_price(*, reseller: Reseller, sku: Sku) -> Decimal:
    """What one unit of `sku` costs this reseller: their tier's price for it."""
    tier = reseller.tier
    tier_price = (
        TierPrice.objects.filter(tier_id=tier.pk, sku_id=sku.pk)
        .values_list("price", flat=True)
        .first()
        if tier is not None
        else None
    )
    return tier_wholesale_price(
        retail=sku.price,
        discount_rate=tier.discount_rate if tier is not None else ZERO,
        tier_price=tier_price,
    )


def substore_unit_price(*, slug: str, sku: Sku) -> Decimal:
    """What one unit of `sku` costs in the sub-store at `slug` (checkout's price).

    Raises: SubstoreError when the sub-store is unknown or closed.
    """
    found = substore_get(slug=slug)
    if found is None:
        raise SubstoreError(str(ERR_SUBSTORE_GONE))
    _store, reseller = found
    return substore_prices(reseller=reseller, skus=[sku])[sku.id]


def prices_key(prices: dict[int, Decimal]) -> str:
    """A short digest of a price list, for cache keys of pages that show it."""
    text = ",".join(f"{k}={v}" for k, v in sorted(prices.items()))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
