"""supplier_refresh and supplier_refresh_all against the simulator over HTTP, and the
client registry."""

from __future__ import annotations

from decimal import Decimal

import pytest

from catalog.models import Sku
from fulfillment.models import Supplier, SupplierProduct
from fulfillment.services import (
    SupplierConfigError,
    supplier_refresh,
    supplier_refresh_all,
)
from fulfillment.services import suppliers as suppliers_service
from fulfillment.suppliers import supplier_client
from fulfillment.tasks import supplier_refresh_all_task
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import (
    mapping_make,
    supplier_for_simulator,
    supplier_make,
)

pytestmark = pytest.mark.django_db

SECRET = "s3cret-signing-key"
ON, OFF, UNKNOWN = "on", "off", "unknown"


@pytest.fixture
def direct_sku():
    return SkuFactory(code="TX-VIP-MONTH", delivery=Sku.Delivery.DIRECT_TOPUP)


# --- supplier_refresh (over HTTP, against the simulator) ---


def test_supplier_refresh_records_balance_and_each_products_state(
    supplier_simulator, direct_sku
):
    supplier = supplier_for_simulator(supplier_simulator)
    music = SkuFactory(code="NE-MUSIC", delivery=Sku.Delivery.DIRECT_TOPUP)
    gone = SkuFactory(code="GONE", delivery=Sku.Delivery.DIRECT_TOPUP)
    card = SkuFactory(code="YK", delivery=Sku.Delivery.CARD_CODE)
    wrong = SkuFactory(code="WRONG", delivery=Sku.Delivery.DIRECT_TOPUP)
    tx = mapping_make(direct_sku, supplier, "P-TX-VIP-MONTH")
    ne = mapping_make(music, supplier, "P-NE-MUSIC-MONTH", cost="11.50")
    missing = mapping_make(gone, supplier, "P-NOT-LISTED")
    yk = mapping_make(card, supplier, "C-YK-VIP-MONTH", cost="20")
    mismatched = mapping_make(wrong, supplier, "C-IQ-VIP-MONTH", cost="30")
    supplier_simulator.faults(
        balance="321.50",
        stock={"P-NE-MUSIC-MONTH": 0, "C-YK-VIP-MONTH": 3},
        product_status={"P-TX-VIP-MONTH": "on"},
    )

    refreshed = supplier_refresh(supplier_id=supplier.pk)

    assert refreshed.last_balance == Decimal("321.50")
    assert refreshed.balance_checked_at is not None
    state = {
        m.pk: (m.supplier_status, m.supplier_stock)
        for m in SupplierProduct.objects.all()
    }
    assert state[tx.pk] == (ON, "ok")
    assert state[ne.pk] == (ON, "out")
    assert state[yk.pk] == (ON, "low")
    assert state[missing.pk] == (OFF, UNKNOWN)
    assert state[mismatched.pk][0] == OFF
    assert "P-NOT-LISTED not listed" in refreshed.last_error
    assert "is a card product" in refreshed.last_error


def test_supplier_refresh_clears_last_error_when_all_is_well(
    supplier_simulator, direct_sku
):
    supplier = supplier_for_simulator(supplier_simulator)
    mapping_make(direct_sku, supplier)
    Supplier.objects.filter(pk=supplier.pk).update(last_error="old trouble")

    refreshed = supplier_refresh(supplier_id=supplier.pk)

    assert refreshed.last_error == ""


def test_supplier_refresh_notes_a_price_above_our_cost(supplier_simulator, direct_sku):
    supplier = supplier_for_simulator(supplier_simulator)
    mapping_make(direct_sku, supplier, cost="20.00")  # the simulator charges 24.00

    refreshed = supplier_refresh(supplier_id=supplier.pk)

    assert "price 24.00 above cost 20.00" in refreshed.last_error


def test_supplier_refresh_keeps_the_last_balance_when_the_supplier_fails(
    supplier_simulator, direct_sku
):
    supplier = supplier_for_simulator(supplier_simulator)
    mapping = mapping_make(direct_sku, supplier)
    before = supplier_refresh(supplier_id=supplier.pk)
    supplier_simulator.faults(unsigned_reply=True)

    after = supplier_refresh(supplier_id=supplier.pk)

    assert after.last_balance == before.last_balance
    assert after.balance_checked_at == before.balance_checked_at
    assert "balance:" in after.last_error
    assert "products:" in after.last_error
    assert SupplierProduct.objects.get(pk=mapping.pk).supplier_status == ON


def test_supplier_refresh_records_an_unreachable_supplier(direct_sku, settings):
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True
    supplier = supplier_make("down", base_url="http://127.0.0.1:1")

    refreshed = supplier_refresh(supplier_id=supplier.pk)

    assert refreshed.last_balance is None
    assert "transport" in refreshed.last_error
    assert SECRET not in refreshed.last_error


def test_supplier_refresh_refuses_an_unknown_supplier():
    with pytest.raises(SupplierConfigError):
        supplier_refresh(supplier_id=999_999)


def test_supplier_refresh_all_asks_enabled_suppliers_only(supplier_simulator):
    good = supplier_for_simulator(supplier_simulator, "good")
    off = supplier_for_simulator(supplier_simulator, "off", enabled=False)
    supplier_make("down", base_url="http://127.0.0.1:1")

    answered = supplier_refresh_all_task.delay().get()

    assert answered == 1
    assert Supplier.objects.get(pk=good.pk).last_balance == Decimal("10000.00")
    assert Supplier.objects.get(pk=off.pk).balance_checked_at is None
    assert Supplier.objects.get(name="down").last_error


def test_supplier_refresh_records_a_secret_the_vault_cannot_open(supplier_simulator):
    supplier_for_simulator(supplier_simulator, "good")
    broken = supplier_make("broken")
    Supplier.objects.filter(pk=broken.pk).update(secret_key_id="gone")

    assert supplier_refresh_all() == 1
    assert "vault key gone" in Supplier.objects.get(pk=broken.pk).last_error


def test_supplier_refresh_all_goes_on_after_one_supplier_crashes(
    supplier_simulator, monkeypatch, caplog
):
    good = supplier_for_simulator(supplier_simulator, "good", priority=2)
    supplier_make("crashing", priority=1)
    real_client = suppliers_service.supplier_client

    def client_or_crash(supplier, **kwargs):
        if supplier.name == "crashing":
            raise RuntimeError("adapter bug")
        return real_client(supplier, **kwargs)

    monkeypatch.setattr(suppliers_service, "supplier_client", client_or_crash)

    assert supplier_refresh_all() == 1
    assert Supplier.objects.get(pk=good.pk).last_balance is not None
    assert "crashed" in caplog.text


# --- the registry ---


def test_supplier_client_opens_the_sealed_secret(supplier_simulator, settings):
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True
    supplier = supplier_for_simulator(supplier_simulator)

    client = supplier_client(supplier)

    assert client.balance() == Decimal("10000.00")


def test_supplier_refresh_records_an_adapter_this_code_does_not_ship():
    supplier = supplier_make("acme")
    Supplier.objects.filter(pk=supplier.pk).update(adapter="legacy")

    refreshed = supplier_refresh(supplier_id=supplier.pk)

    assert "unknown adapter" in refreshed.last_error
