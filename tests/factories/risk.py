from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.utils import timezone

from orders.models import Order, OrderLine
from risk.cache import risk_rules_changed
from risk.models import RiskListEntry, RiskRule, Subject

# Rules made by the factory have existed this long: the Redis counters are
# complete for their windows (risk/counters.py), as in a shop that has run a while.
RULE_AGE = dt.timedelta(days=90)
# The risk tests' fixed clock (tests/risk/conftest.py T0) is on this day: a rule is
# aged from the earlier of it and the real clock, so it has existed RULE_AGE at
# T0 however long after that day the suite runs.
FIXED_CLOCK_DAY = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


class RiskRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RiskRule
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"规则{n}")
    kind = RiskRule.Kind.VELOCITY_ORDERS
    subject = Subject.DEVICE
    window_seconds = 3600
    threshold = Decimal(5)
    action = RiskRule.ActionChoice.BLOCK

    @factory.post_generation
    def aged(obj, create, extracted, **kwargs):
        if create and extracted is not False:
            when = min(timezone.now(), FIXED_CLOCK_DAY) - RULE_AGE
            RiskRule.objects.filter(pk=obj.pk).update(
                updated_at=when, counting_since=when
            )
            obj.updated_at = obj.counting_since = when
            risk_rules_changed()


class RiskListEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RiskListEntry

    list_kind = RiskListEntry.ListKind.BLOCK
    subject = Subject.IP
    value = "203.0.113.0/24"


def risk_order(
    *,
    user,
    sku,
    created_at: dt.datetime,
    ip: str | None = None,
    device: str = "",
    recharge_account: str = "",
    quantity: int = 1,
    amount: Decimal = Decimal("25.00"),
    status: str = Order.Status.PENDING,
    expires_at: dt.datetime | None = None,
) -> Order:
    """An order with its one top-level line, placed at `created_at`: what the
    database counters read."""
    order = Order.objects.create(
        user=user,
        email=user.email,
        total_amount=amount,
        status=status,
        ip_address=ip,
        device_id=device,
        expires_at=expires_at or created_at + dt.timedelta(minutes=15),
    )
    OrderLine.objects.create(
        order=order,
        sku=sku,
        delivery=sku.delivery,
        product_name=sku.product.name,
        sku_name=sku.name,
        recharge_account=recharge_account,
        quantity=quantity,
        unit_price=(amount / quantity).quantize(Decimal("0.01")),
        amount=amount,
    )
    Order.objects.filter(pk=order.pk).update(created_at=created_at)
    return order
