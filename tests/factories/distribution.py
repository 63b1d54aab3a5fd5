"""Resellers, tiers, rules, and delivered orders credited to a reseller.

Orders are written as rows in the state delivery leaves them (paid by one
succeeded payment, every line delivered), like tests/factories/fulfillment.py's
`topup_make`: the commission hooks read those rows, and refunds go through the
real `refund_request`. tests/distribution/test_ledger.py also drives one order
through checkout and the sandbox gateway end to end.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import factory
from django.utils import timezone

from catalog.models import Sku
from distribution.models import (
    CommissionRule,
    OrderAttribution,
    Reseller,
    Tier,
)
from orders.models import Order, OrderLine, Payment
from tests.factories.accounts import UserFactory


class TierFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tier
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"代理等级{n}")


class ResellerFactory(factory.django.DjangoModelFactory):
    """An approved reseller; pass `parent=` for a downline (depth follows)."""

    class Meta:
        model = Reseller

    user = factory.SubFactory(UserFactory)
    status = Reseller.Status.APPROVED
    approved_at = factory.LazyFunction(timezone.now)
    tier = factory.SubFactory(TierFactory, name="普通代理")
    parent = None
    depth = factory.LazyAttribute(lambda r: r.parent.depth + 1 if r.parent else 1)


def rule_set(
    level: int, rate: str, *, tier: Tier | None = None, sku: Sku | None = None
) -> CommissionRule:
    return CommissionRule.objects.create(
        level=level, rate=Decimal(rate), tier=tier, sku=sku
    )


@dataclass(frozen=True)
class LineSpec:
    """One line to deliver: what the shopper paid after discounts, and the discount."""

    sku: Sku
    amount: Decimal | str
    discount: Decimal | str = "0.00"
    quantity: int = 1
    # Bundle parts: (component SKU, share of `amount`); empty for a plain line.
    parts: Sequence[tuple[Sku, Decimal | str]] = ()


def delivered_order(
    buyer: Any,
    lines: Sequence[LineSpec],
    *,
    reseller: Reseller | None = None,
    channel: str = OrderAttribution.Channel.REFERRAL_LINK,
    now: dt.datetime | None = None,
) -> Order:
    """A paid, delivered order of these lines, credited to `reseller` when given."""
    now = now or timezone.now()
    total = sum((Decimal(spec.amount) for spec in lines), Decimal(0))
    order = Order.objects.create(
        user=buyer,
        email=buyer.email,
        status=Order.Status.DELIVERED,
        total_amount=total,
        paid_amount=total,
        expires_at=now + dt.timedelta(minutes=15),
        paid_at=now,
        delivered_at=now,
    )
    Payment.objects.create(
        order=order,
        gateway="sandbox",
        trade_no=f"T{secrets.token_hex(6)}",
        amount=total,
    )
    for spec in lines:
        amount = Decimal(spec.amount)
        parent = OrderLine.objects.create(
            order=order,
            sku=spec.sku,
            delivery=spec.sku.delivery,
            product_name=spec.sku.product.name,
            sku_name=spec.sku.name,
            quantity=spec.quantity,
            unit_price=(amount + Decimal(spec.discount)) / spec.quantity,
            amount=amount,
            discount_amount=Decimal(spec.discount),
            status=OrderLine.Status.DELIVERED,
            delivered_at=now,
        )
        for component, share in spec.parts:
            OrderLine.objects.create(
                order=order,
                parent=parent,
                sku=component,
                delivery=component.delivery,
                product_name=component.product.name,
                sku_name=component.name,
                quantity=1,
                unit_price=Decimal(share),
                amount=Decimal(share),
                status=OrderLine.Status.DELIVERED,
                delivered_at=now,
            )
    if reseller is not None:
        OrderAttribution.objects.create(order=order, reseller=reseller, channel=channel)
    return order


def leaf_lines(order: Order) -> list[OrderLine]:
    """The lines that carry money and get delivered (a bundle's parts, not the bundle)."""
    return [
        line
        for line in order.lines.order_by("pk")
        if line.delivery != Sku.Delivery.BUNDLE
    ]
