"""Supplier admin: the secret is write-only, saves go through the services, the
refresh action asks the supplier, operators hold exactly the permissions they need."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from django.urls import reverse

from catalog.models import Sku
from fulfillment import vault
from fulfillment.models import Supplier, SupplierProduct
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import (
    mapping_make,
    supplier_for_simulator,
    supplier_make,
)

pytestmark = pytest.mark.django_db

SECRET = "admin-secret-never-shown"


def _form(**overrides):
    data = {
        "name": "acme",
        "adapter": "generic",
        "base_url": "https://api.acme.example",
        "app_key": "app-1",
        "secret": SECRET,
        "priority": "7",
        "is_enabled": "on",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def _opened(supplier: Supplier) -> str:
    return vault.open_secret(
        ciphertext=supplier.secret_ciphertext, key_id=supplier.secret_key_id
    )


def test_operator_adds_a_supplier_and_the_secret_is_sealed(operator_client, caplog):
    caplog.set_level(logging.DEBUG)

    response = operator_client.post(reverse("admin:fulfillment_supplier_add"), _form())

    assert response.status_code == 302
    supplier = Supplier.objects.get(name="acme")
    assert supplier.priority == 7
    assert _opened(supplier) == SECRET
    assert SECRET not in supplier.secret_ciphertext
    assert SECRET not in caplog.text


def test_add_page_offers_an_empty_password_field(operator_client):
    response = operator_client.get(reverse("admin:fulfillment_supplier_add"))

    page = response.content.decode()
    assert response.status_code == 200
    assert 'type="password" name="secret"' in page
    assert "secret_ciphertext" not in page


def test_adding_without_a_secret_is_refused_at_the_field(operator_client):
    response = operator_client.post(
        reverse("admin:fulfillment_supplier_add"), _form(secret="")
    )

    assert response.status_code == 200
    assert "secret" in response.context["adminform"].form.errors
    assert not Supplier.objects.exists()


def test_a_failed_submit_never_echoes_the_secret(operator_client):
    response = operator_client.post(
        reverse("admin:fulfillment_supplier_add"), _form(base_url="ftp://x")
    )

    assert response.status_code == 200
    assert SECRET not in response.content.decode()
    assert not Supplier.objects.exists()


def test_change_page_never_renders_the_secret_or_its_ciphertext(operator_client):
    supplier = supplier_make("acme", secret=SECRET)

    response = operator_client.get(
        reverse("admin:fulfillment_supplier_change", args=[supplier.pk])
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert SECRET not in page
    assert supplier.secret_ciphertext not in page
    assert 'name="secret"' in page


def test_saving_with_a_blank_secret_keeps_the_sealed_one(operator_client):
    supplier = supplier_make("acme", secret=SECRET)

    response = operator_client.post(
        reverse("admin:fulfillment_supplier_change", args=[supplier.pk]),
        _form(secret="", priority="3", is_enabled=None),
    )

    assert response.status_code == 302
    supplier.refresh_from_db()
    assert _opened(supplier) == SECRET
    assert (supplier.priority, supplier.is_enabled) == (3, False)
    assert Supplier.objects.count() == 1


def test_saving_with_a_new_secret_replaces_it(operator_client):
    supplier = supplier_make("acme", secret=SECRET)

    operator_client.post(
        reverse("admin:fulfillment_supplier_change", args=[supplier.pk]),
        _form(secret="rotated-secret"),
    )

    supplier.refresh_from_db()
    assert _opened(supplier) == "rotated-secret"


def test_supplier_list_shows_health_columns(operator_client):
    supplier = supplier_make("acme")
    Supplier.objects.filter(pk=supplier.pk).update(
        last_balance=Decimal("12.34"), last_error="balance: timeout"
    )

    response = operator_client.get(reverse("admin:fulfillment_supplier_changelist"))

    page = response.content.decode()
    assert response.status_code == 200
    assert "12.34" in page
    assert "balance: timeout" in page


def test_refresh_action_asks_the_supplier_now(operator_client, supplier_simulator):
    supplier = supplier_for_simulator(supplier_simulator)

    response = operator_client.post(
        reverse("admin:fulfillment_supplier_changelist"),
        {"action": "refresh_now", "_selected_action": [supplier.pk]},
        follow=True,
    )

    supplier.refresh_from_db()
    assert response.status_code == 200
    assert supplier.last_balance == Decimal("10000.00")
    assert "10000.00" in response.content.decode()


def test_refresh_action_reports_a_failing_supplier(operator_client, settings):
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True
    supplier = supplier_make("down", base_url="http://127.0.0.1:1")

    response = operator_client.post(
        reverse("admin:fulfillment_supplier_changelist"),
        {"action": "refresh_now", "_selected_action": [supplier.pk]},
        follow=True,
    )

    assert "down" in response.content.decode()
    supplier.refresh_from_db()
    assert supplier.last_error


def test_suppliers_cannot_be_deleted_from_the_admin(admin_client):
    supplier = supplier_make("acme")

    response = admin_client.get(
        reverse("admin:fulfillment_supplier_delete", args=[supplier.pk])
    )

    assert response.status_code == 403


# --- supplier products ---


@pytest.fixture
def sku():
    return SkuFactory(code="TX-VIP-MONTH", delivery=Sku.Delivery.DIRECT_TOPUP)


def test_operator_maps_a_sku_through_the_admin(operator_client, sku):
    supplier = supplier_make("acme")

    response = operator_client.post(
        reverse("admin:fulfillment_supplierproduct_add"),
        {
            "supplier": supplier.pk,
            "sku": sku.pk,
            "product_id": "P-TX-VIP-MONTH",
            "cost": "24.00",
            "priority": "1",
            "is_enabled": "on",
        },
    )

    assert response.status_code == 302
    mapping = SupplierProduct.objects.get()
    assert (mapping.product_id, mapping.cost, mapping.priority) == (
        "P-TX-VIP-MONTH",
        Decimal("24.00"),
        1,
    )


@pytest.mark.parametrize(
    ("delivery", "cost", "field"),
    [(Sku.Delivery.BUNDLE, "24.00", "sku"), (Sku.Delivery.DIRECT_TOPUP, "-1", "cost")],
)
def test_mapping_form_refuses_bundles_and_negative_costs(
    operator_client, delivery, cost, field
):
    sku = SkuFactory(delivery=delivery)
    supplier = supplier_make("acme")

    response = operator_client.post(
        reverse("admin:fulfillment_supplierproduct_add"),
        {
            "supplier": supplier.pk,
            "sku": sku.pk,
            "product_id": "P-1",
            "cost": cost,
            "priority": "1",
        },
    )

    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not SupplierProduct.objects.exists()


def test_mapping_list_edits_cost_through_the_service(operator_client, sku):
    mapping = mapping_make(sku, supplier_make("acme"), cost="24.00")
    url = reverse("admin:fulfillment_supplierproduct_changelist")

    response = operator_client.post(
        url,
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-id": mapping.pk,
            "form-0-cost": "22.00",
            "form-0-priority": "4",
            "form-0-is_enabled": "on",
            "_save": "Save",
        },
    )

    assert response.status_code == 302
    mapping.refresh_from_db()
    assert (mapping.cost, mapping.priority) == (Decimal("22.00"), 4)


def test_mapping_list_filters_render(operator_client, sku):
    mapping_make(sku, supplier_make("acme"))
    url = reverse("admin:fulfillment_supplierproduct_changelist")

    response = operator_client.get(url, {"supplier_status__exact": "unknown"})

    assert response.status_code == 200
    assert "P-TX-VIP-MONTH" in response.content.decode()


def test_operators_hold_supplier_permissions(operator):
    for codename in (
        "view_supplier",
        "add_supplier",
        "change_supplier",
        "view_supplierproduct",
        "add_supplierproduct",
        "change_supplierproduct",
    ):
        assert operator.has_perm(f"fulfillment.{codename}")
    assert not operator.has_perm("fulfillment.delete_supplier")
