"""supplier_register and supplier_map: the contract flags, one line of output, no
secret printed, clear errors and nothing half-written."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from catalog.models import Sku
from fulfillment import vault
from fulfillment.models import Supplier, SupplierProduct
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import supplier_make

pytestmark = pytest.mark.django_db

SECRET = "cmd-secret-value-123"


def _run(name: str, *args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _register(*extra: str, name: str = "acme") -> tuple[str, str]:
    return _run(
        "supplier_register",
        name,
        "--base-url",
        "https://api.acme.example",
        "--app-key",
        "app-1",
        "--secret",
        SECRET,
        *extra,
    )


# --- supplier_register ---


def test_supplier_register_creates_and_prints_one_line_without_the_secret():
    out, err = _register("--priority", "5")

    supplier = Supplier.objects.get(name="acme")
    assert out.strip().startswith("created supplier acme")
    assert "priority 5" in out
    assert "enabled" in out
    assert len(out.strip().splitlines()) == 1
    assert SECRET not in out + err
    assert supplier.priority == 5
    assert (
        vault.open_secret(
            ciphertext=supplier.secret_ciphertext, key_id=supplier.secret_key_id
        )
        == SECRET
    )


def test_supplier_register_twice_updates_the_same_supplier():
    _register("--priority", "5")

    out, _err = _register("--disabled")

    assert out.startswith("updated supplier acme")
    assert "disabled" in out
    assert Supplier.objects.count() == 1
    supplier = Supplier.objects.get()
    assert supplier.priority == 5  # not given: kept
    assert supplier.is_enabled is False


def test_supplier_register_defaults_to_enabled_with_priority_100():
    _register()

    supplier = Supplier.objects.get()
    assert (supplier.priority, supplier.is_enabled) == (100, True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--base-url", "ftp://a.example"], "base_url"),
        (["--base-url", "not-a-url"], "base_url"),
        (["--priority", "-3"], "priority"),
    ],
)
def test_supplier_register_refuses_bad_input_and_saves_nothing(args, message):
    base = {
        "--base-url": "https://api.acme.example",
        "--app-key": "k",
        "--secret": SECRET,
    }
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    flat = [item for pair in base.items() for item in pair]

    with pytest.raises(CommandError, match=message) as caught:
        _run("supplier_register", "acme", *flat)

    assert "nothing was saved" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert not Supplier.objects.exists()


def test_supplier_register_refuses_a_bad_name():
    with pytest.raises(CommandError, match="nothing was saved"):
        _register(name="has space")

    assert not Supplier.objects.exists()


def test_supplier_register_requires_its_flags():
    with pytest.raises(CommandError, match="--secret"):
        _run(
            "supplier_register",
            "acme",
            "--base-url",
            "https://a.example",
            "--app-key",
            "k",
        )


# --- supplier_map ---


@pytest.fixture
def sku():
    return SkuFactory(code="TX-VIP-MONTH", delivery=Sku.Delivery.DIRECT_TOPUP)


def _map(
    *extra: str, sku: str = "TX-VIP-MONTH", cost: str = "24.00"
) -> tuple[str, str]:
    return _run(
        "supplier_map",
        sku,
        "--supplier",
        "acme",
        "--product-id",
        "P-TX-VIP-MONTH",
        "--cost",
        cost,
        *extra,
    )


def test_supplier_map_creates_then_updates_one_mapping(sku):
    supplier_make("acme")

    created, _ = _map("--priority", "2")
    updated, _ = _map(cost="23.50")

    assert created.strip() == (
        "created mapping TX-VIP-MONTH -> acme:P-TX-VIP-MONTH (cost 24.00, priority 2)"
    )
    assert updated.strip() == (
        "updated mapping TX-VIP-MONTH -> acme:P-TX-VIP-MONTH (cost 23.50, priority 2)"
    )
    mapping = SupplierProduct.objects.get()
    assert mapping.cost == Decimal("23.50")


@pytest.mark.parametrize(
    ("sku_code", "cost", "message"),
    [
        ("NOPE", "24.00", "NOPE"),
        ("TX-VIP-MONTH", "-1", "zero or more"),
        ("TX-VIP-MONTH", "abc", "decimal amount"),
        ("TX-VIP-MONTH", "1.234", "two decimal places"),
        ("TX-VIP-MONTH", "Infinity", "zero or more"),
    ],
)
def test_supplier_map_refuses_bad_input_and_saves_nothing(sku, sku_code, cost, message):
    supplier_make("acme")

    with pytest.raises(CommandError, match=message):
        _map(sku=sku_code, cost=cost)

    assert not SupplierProduct.objects.exists()


def test_supplier_map_refuses_an_unknown_supplier(sku):
    with pytest.raises(CommandError, match="acme"):
        _map()

    assert not SupplierProduct.objects.exists()


def test_supplier_map_refuses_a_bundle_sku():
    SkuFactory(code="BUNDLE-1", delivery=Sku.Delivery.BUNDLE)
    supplier_make("acme")

    with pytest.raises(CommandError, match="BUNDLE-1"):
        _map(sku="BUNDLE-1")

    assert not SupplierProduct.objects.exists()
