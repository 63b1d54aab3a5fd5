"""What a partner pays and what the shop paid: tier prices and costs (reads only).

A partner always pays its tier's wholesale price (distribution/tiers.py), never
the storefront's nor another tier's, and never less than what the goods cost
the shop: an order whose price is below the cost of the codes it reserved (their
batches' cost price) or of its top-ups (the dearest enabled supplier mapping,
since fail-over may use any) is refused and rolled back.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from django.db.models import Max, Sum

from catalog.models import Sku
from config.lib.money import ZERO, quantize
from distribution.models import Reseller, TierPrice
from distribution.tiers import tier_wholesale_price
from fulfillment.models import CardCode, SupplierProduct
from orders.models import OrderLine


def partner_prices(*, reseller: Reseller, skus: Iterable[Sku]) -> dict[int, Decimal]:
    """Each SKU's price for this reseller's tier, by SKU id (one query)."""
    skus = list(skus)
    tier = reseller.tier
    overrides: dict[int, Decimal] = {}
    if tier is not None:
        overrides = dict(
            TierPrice.objects.filter(
                tier=tier, sku_id__in=[s.id for s in skus]
            ).values_list("sku_id", "price")
        )
    discount = tier.discount_rate if tier is not None else ZERO
    return {
        s.id: tier_wholesale_price(
            retail=s.price, discount_rate=discount, tier_price=overrides.get(s.id)
        )
        for s in skus
    }


def order_cost(*, order_id: int) -> Decimal:
    """What the goods of a just-placed order cost the shop.

    Card codes: the cost price of the batches of the codes reserved for it
    (a batch without a cost counts 0). Top-ups: the dearest enabled mapping's
    cost per unit. Bundles: the sum of their parts.
    """
    codes = CardCode.objects.filter(order_line__order_id=order_id).aggregate(
        cost=Sum("batch__cost_price")
    )["cost"]
    total = codes or ZERO
    topups = list(
        OrderLine.objects.filter(
            order_id=order_id, delivery=Sku.Delivery.DIRECT_TOPUP
        ).values_list("sku_id", "quantity")
    )
    if topups:
        costs = dict(
            SupplierProduct.objects.filter(
                sku_id__in={sku_id for sku_id, _q in topups},
                is_enabled=True,
                supplier__is_enabled=True,
            )
            .values("sku_id")
            .annotate(cost=Max("cost"))
            .values_list("sku_id", "cost")
            .order_by()
        )
        total += sum(
            (costs.get(sku_id, ZERO) * quantity for sku_id, quantity in topups), ZERO
        )
    return quantize(total)
