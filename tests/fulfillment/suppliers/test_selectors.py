"""Supplier selectors: the fail-over order for a SKU and top-up capacity."""

from __future__ import annotations

from decimal import Decimal

import pytest

from catalog.models import Sku
from fulfillment.models import Supplier, SupplierProduct
from fulfillment.selectors import supplier_products_for_sku, topup_capacity_by_sku
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import mapping_make, supplier_make

pytestmark = pytest.mark.django_db

ON, OFF, UNKNOWN = "on", "off", "unknown"


@pytest.fixture
def direct_sku():
    return SkuFactory(code="TX-VIP-MONTH", delivery=Sku.Delivery.DIRECT_TOPUP)


def _set(mapping, **fields):
    SupplierProduct.objects.filter(pk=mapping.pk).update(**fields)


def test_supplier_products_for_sku_orders_the_fail_over(direct_sku):
    a = supplier_make("a", priority=1)
    b = supplier_make("b", priority=2)
    c = supplier_make("c", priority=3)
    d = supplier_make("d", priority=0, enabled=False)
    e = supplier_make("e", priority=0)
    on_b = mapping_make(direct_sku, b, priority=10)
    on_c = mapping_make(direct_sku, c, priority=5)
    off_a = mapping_make(direct_sku, a, priority=1)
    mapping_make(direct_sku, d, priority=1)  # supplier disabled
    mapping_make(direct_sku, e, priority=1, enabled=False)  # mapping disabled
    same_prio = mapping_make(SkuFactory(delivery="direct_topup"), a)
    _set(off_a, supplier_status=OFF)

    found = supplier_products_for_sku(sku_id=direct_sku.pk)

    assert [m.pk for m in found] == [on_c.pk, on_b.pk, off_a.pk]
    assert found[0].supplier.name == "c"  # selected with its supplier
    assert same_prio.pk not in [m.pk for m in found]


def test_supplier_products_for_sku_breaks_ties_by_supplier_priority(direct_sku):
    low = mapping_make(direct_sku, supplier_make("second", priority=20))
    high = mapping_make(direct_sku, supplier_make("first", priority=10))

    assert [m.pk for m in supplier_products_for_sku(sku_id=direct_sku.pk)] == [
        high.pk,
        low.pk,
    ]


@pytest.mark.parametrize(
    ("mapping_fields", "supplier_fields", "expected"),
    [
        ({"supplier_status": ON}, {"last_balance": Decimal("24.00")}, True),
        ({"supplier_status": ON, "supplier_stock": "low"}, {"last_balance": 100}, True),
        ({"supplier_status": ON}, {"last_balance": Decimal("23.99")}, False),
        ({"supplier_status": ON}, {"last_balance": None}, False),
        ({"supplier_status": UNKNOWN}, {"last_balance": 100}, False),
        ({"supplier_status": OFF}, {"last_balance": 100}, False),
        (
            {"supplier_status": ON, "supplier_stock": "out"},
            {"last_balance": 100},
            False,
        ),
        ({"supplier_status": ON, "is_enabled": False}, {"last_balance": 100}, False),
        ({"supplier_status": ON}, {"last_balance": 100, "is_enabled": False}, False),
    ],
)
def test_topup_capacity_by_sku(direct_sku, mapping_fields, supplier_fields, expected):
    mapping = mapping_make(direct_sku, supplier_make("acme"), cost="24.00")
    _set(mapping, **mapping_fields)
    Supplier.objects.filter(pk=mapping.supplier_id).update(**supplier_fields)
    other = SkuFactory(delivery="direct_topup")

    capacity = topup_capacity_by_sku(sku_ids=[direct_sku.pk, other.pk])

    assert capacity == {direct_sku.pk: expected, other.pk: False}


def test_topup_capacity_by_sku_needs_only_one_able_supplier(direct_sku):
    able = mapping_make(direct_sku, supplier_make("able"))
    broke = mapping_make(direct_sku, supplier_make("broke"))
    _set(able, supplier_status=ON)
    _set(broke, supplier_status=ON)
    Supplier.objects.filter(name="able").update(last_balance=100)
    Supplier.objects.filter(name="broke").update(last_balance=0)

    assert topup_capacity_by_sku(sku_ids=[direct_sku.pk]) == {direct_sku.pk: True}
    assert topup_capacity_by_sku(sku_ids=[]) == {}
