from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from catalog.models import BundleItem, Platform, Product, Sku, ValidityRule
from fulfillment.models import CardCode, CodeBatch, Supplier, SupplierProduct

pytestmark = pytest.mark.django_db

SIMULATOR_URL = "http://127.0.0.1:8799"


def _seed(**options: object) -> None:
    call_command("seed_demo", "--force", stdout=_Null(), **options)


class _Null:
    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


def _counts() -> dict[str, int]:
    models = (
        Platform,
        Product,
        Sku,
        ValidityRule,
        BundleItem,
        CodeBatch,
        CardCode,
        Supplier,
        SupplierProduct,
    )
    return {model.__name__: model.objects.count() for model in models}


def test_seed_demo_twice_creates_nothing_new():
    _seed(simulator_url=SIMULATOR_URL)
    first = _counts()

    _seed(simulator_url=SIMULATOR_URL)

    assert _counts() == first


def test_seed_demo_registers_simulator_and_maps_topup_and_restock_skus():
    _seed(simulator_url=SIMULATOR_URL)

    supplier = Supplier.objects.get(name="demo-sim")
    assert (supplier.base_url, supplier.app_key, supplier.is_enabled) == (
        SIMULATOR_URL,
        "kaquan-demo",
        True,
    )
    mappings = {
        m.sku.code: (m.product_id, m.cost)
        for m in SupplierProduct.objects.filter(supplier=supplier).select_related("sku")
    }
    assert mappings == {
        "TX-VIP-MONTH-DIRECT": ("P-TX-VIP-MONTH", Decimal("24.00")),
        "NE-MUSIC-MONTH-DIRECT": ("P-NE-MUSIC-MONTH", Decimal("11.50")),
        "IQ-GOLD-MONTH-DIRECT": ("P-IQ-VIP-MONTH", Decimal("23.00")),
        "YK-VIP-MONTH": ("C-YK-VIP-MONTH", Decimal("20.00")),
    }


def test_seed_demo_moves_supplier_when_simulator_port_changes():
    _seed(simulator_url=SIMULATOR_URL)

    _seed(simulator_url="http://127.0.0.1:8099")

    assert Supplier.objects.get(name="demo-sim").base_url == "http://127.0.0.1:8099"
    assert SupplierProduct.objects.count() == 4


def test_seed_demo_topups_sell_above_cost_with_the_platform_account_rule():
    _seed()

    topups = Sku.objects.filter(delivery=Sku.Delivery.DIRECT_TOPUP).select_related(
        "product__platform"
    )
    rules = {sku.code: sku.product.platform.account_rule for sku in topups}
    assert rules == {
        "TX-VIP-MONTH-DIRECT": Platform.AccountRule.QQ,
        "NE-MUSIC-MONTH-DIRECT": Platform.AccountRule.PHONE,
        "IQ-GOLD-MONTH-DIRECT": Platform.AccountRule.PHONE,
    }
    for mapping in SupplierProduct.objects.filter(sku__in=topups).select_related("sku"):
        assert mapping.cost < mapping.sku.price <= mapping.sku.face_value
        assert mapping.sku.validity_rule is not None
    assert not CardCode.objects.filter(sku__in=topups).exists()


def test_seed_demo_bundle_holds_one_card_code_and_one_topup_sku():
    _seed()

    bundle = Sku.objects.get(code="BUNDLE-TX-NE-MONTH")
    components = {
        item.component.code: (item.component.delivery, item.quantity)
        for item in BundleItem.objects.filter(bundle=bundle).select_related("component")
    }
    assert bundle.delivery == Sku.Delivery.BUNDLE
    assert components == {
        "TX-VIP-MONTH-DIRECT": (Sku.Delivery.DIRECT_TOPUP, 1),
        "NE-VINYL-MONTH": (Sku.Delivery.CARD_CODE, 1),
    }
    # The bundle's platform checks the account its top-up component needs.
    assert bundle.product.platform.slug == "tencent-video"
    assert not SupplierProduct.objects.filter(sku=bundle).exists()


def test_seed_demo_refuses_a_bad_simulator_url():
    with pytest.raises(CommandError):
        _seed(simulator_url="not a url")
