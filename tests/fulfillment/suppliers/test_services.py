"""Supplier services and selectors: register, map, refresh (against the simulator),
fail-over order, top-up capacity, secret sealing and rotation."""

from __future__ import annotations

from decimal import Decimal

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from catalog.models import Sku
from fulfillment import services, vault
from fulfillment.models import Supplier, SupplierProduct
from fulfillment.services import (
    SupplierConfigError,
    supplier_map,
    supplier_register,
    vault_rotate,
)
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import (
    mapping_make,
    supplier_make,
)

pytestmark = pytest.mark.django_db

SECRET = "s3cret-signing-key"
ON, OFF, UNKNOWN = "on", "off", "unknown"


def _raw_secret_column(supplier: Supplier) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT secret_ciphertext, secret_key_id FROM fulfillment_supplier WHERE id = %s",
            [supplier.pk],
        )
        return " ".join(cursor.fetchone())


@pytest.fixture
def direct_sku():
    return SkuFactory(code="TX-VIP-MONTH", delivery=Sku.Delivery.DIRECT_TOPUP)


# --- supplier_register ---


def test_supplier_register_seals_the_secret_at_rest():
    supplier = supplier_make("acme", secret=SECRET)

    raw = _raw_secret_column(supplier)
    assert SECRET not in raw
    assert supplier.secret_key_id == vault.newest_key_id()
    assert (
        vault.open_secret(
            ciphertext=supplier.secret_ciphertext, key_id=supplier.secret_key_id
        )
        == SECRET
    )
    assert SECRET not in repr(supplier)
    assert SECRET not in str(supplier)


def test_supplier_register_is_idempotent_by_name():
    first = supplier_make("acme", priority=5)

    second = supplier_register(
        name="acme",
        base_url="https://api.acme.example/",
        app_key="k2",
        secret=None,
        priority=None,
        enabled=False,
    )

    assert second.pk == first.pk
    assert Supplier.objects.count() == 1
    assert second.base_url == "https://api.acme.example"  # trailing slash dropped
    assert (second.app_key, second.priority, second.is_enabled) == ("k2", 5, False)
    # A blank secret keeps the sealed one.
    assert second.secret_ciphertext == first.secret_ciphertext


def test_supplier_register_replaces_the_secret_when_given():
    first = supplier_make("acme", secret="old-secret")

    second = supplier_make("acme", secret="new-secret")

    assert second.pk == first.pk
    assert (
        vault.open_secret(
            ciphertext=second.secret_ciphertext, key_id=second.secret_key_id
        )
        == "new-secret"
    )


def test_supplier_register_refuses_a_new_supplier_without_secret():
    with pytest.raises(SupplierConfigError):
        supplier_register(
            name="acme",
            base_url="https://a.example",
            app_key="k",
            secret="",
            priority=None,
            enabled=True,
        )

    assert not Supplier.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("base_url", "ftp://a.example"),
        ("base_url", "not a url"),
        ("base_url", "https://"),
        ("name", "has space"),
        ("name", ""),
        ("app_key", ""),
        ("priority", -1),
    ],
)
def test_supplier_register_refuses_bad_input_and_saves_nothing(field, value):
    kwargs = {
        "name": "acme",
        "base_url": "https://a.example",
        "app_key": "k",
        "secret": SECRET,
        "priority": None,
        "enabled": True,
        field: value,
    }

    with pytest.raises(SupplierConfigError):
        supplier_register(**kwargs)

    assert not Supplier.objects.exists()


# --- supplier_map ---


def test_supplier_map_creates_then_updates_one_mapping(direct_sku):
    supplier = supplier_make("acme")

    first = mapping_make(direct_sku, supplier, cost="24.00", priority=3)
    second = mapping_make(direct_sku, supplier, cost="23.50")

    assert second.pk == first.pk
    assert SupplierProduct.objects.count() == 1
    assert second.cost == Decimal("23.50")
    assert second.priority == 3  # kept when not given
    assert second.supplier_status == UNKNOWN


def test_supplier_map_accepts_a_card_sku_restocked_from_the_supplier():
    sku = SkuFactory(code="YK-VIP-MONTH", delivery=Sku.Delivery.CARD_CODE)

    mapping = mapping_make(sku, supplier_make("acme"), "C-YK-VIP-MONTH", cost="20")

    assert mapping.product_id == "C-YK-VIP-MONTH"


def test_supplier_map_refuses_a_bundle_sku():
    SkuFactory(code="BUNDLE-1", delivery=Sku.Delivery.BUNDLE)
    supplier_make("acme")

    with pytest.raises(SupplierConfigError, match="BUNDLE-1"):
        supplier_map(
            sku_code="BUNDLE-1",
            supplier_name="acme",
            product_id="P-1",
            cost=Decimal("1.00"),
        )

    assert not SupplierProduct.objects.exists()


@pytest.mark.parametrize(
    ("sku_code", "supplier_name", "product_id", "cost"),
    [
        ("NOPE", "acme", "P-1", Decimal("1.00")),
        ("TX-VIP-MONTH", "nobody", "P-1", Decimal("1.00")),
        ("TX-VIP-MONTH", "acme", "", Decimal("1.00")),
        ("TX-VIP-MONTH", "acme", "P" * 65, Decimal("1.00")),
        ("TX-VIP-MONTH", "acme", "P-1", Decimal("-0.01")),
        ("TX-VIP-MONTH", "acme", "P-1", Decimal("1.005")),
        ("TX-VIP-MONTH", "acme", "P-1", Decimal("NaN")),
    ],
)
def test_supplier_map_refuses_bad_input_and_saves_nothing(
    direct_sku, sku_code, supplier_name, product_id, cost
):
    supplier_make("acme")

    with pytest.raises(SupplierConfigError):
        supplier_map(
            sku_code=sku_code,
            supplier_name=supplier_name,
            product_id=product_id,
            cost=cost,
        )

    assert not SupplierProduct.objects.exists()


def test_supplier_map_resets_the_known_state_when_the_product_changes(direct_sku):
    mapping = mapping_make(direct_sku, supplier_make("acme"))
    SupplierProduct.objects.filter(pk=mapping.pk).update(
        supplier_status=ON, supplier_stock="ok"
    )

    same = mapping_make(direct_sku, mapping.supplier, cost="20.00")
    moved = mapping_make(direct_sku, mapping.supplier, "P-OTHER")

    assert same.supplier_status == ON
    assert (moved.supplier_status, moved.supplier_stock) == (UNKNOWN, UNKNOWN)


# --- vault rotation and the services package ---


def test_vault_rotate_reseals_supplier_secrets(settings):
    supplier = supplier_make("acme", secret=SECRET)
    old_key_id = supplier.secret_key_id
    settings.VAULT_KEYS = [Fernet.generate_key().decode(), *settings.VAULT_KEYS]

    vault_rotate()

    supplier.refresh_from_db()
    assert supplier.secret_key_id != old_key_id
    assert supplier.secret_key_id == vault.newest_key_id()
    assert (
        vault.open_secret(
            ciphertext=supplier.secret_ciphertext, key_id=supplier.secret_key_id
        )
        == SECRET
    )
    assert services.supplier_secrets_rotate() == 0  # nothing left to do


def test_services_package_still_exports_every_public_name():
    for name in services.__all__:
        assert getattr(services, name) is not None
    assert services.card_codes_reserve.__module__ == "fulfillment.services.codes"


def test_supplier_map_refuses_an_out_of_range_priority(direct_sku):
    supplier_make("acme")

    with pytest.raises(SupplierConfigError, match="priority"):
        supplier_map(
            sku_code=direct_sku.code,
            supplier_name="acme",
            product_id="P-1",
            cost=Decimal("1.00"),
            priority=40_000,
        )
