"""A supplier callback for a card restock: answered, and the restock looked at now."""

from __future__ import annotations

import json
import secrets
import time

import pytest
from django.urls import reverse
from django.utils import timezone

from fulfillment.models import CardRestock, SupplierCallback
from fulfillment.services import card_restock_check
from fulfillment.suppliers import protocol
from tests.factories.fulfillment import stock_codes
from tests.fulfillment.restock.conftest import THRESHOLD

pytestmark = pytest.mark.django_db


def signed_callback(simulator, number, state="success"):
    fields = {
        "order_id": "SIM-1",
        "customer_order_no": number,
        "state": state,
        "fail_reason": "",
        "finished_at": timezone.now().isoformat(),
        "timestamp": int(time.time()),
        "nonce": secrets.token_hex(8),
    }
    fields["sign"] = protocol.sign(fields, simulator.secret)
    return json.dumps(fields)


def test_restock_callback_is_acknowledged_and_the_restock_is_stepped_at_once(
    client,
    card_sku,
    sim_supplier,
    supplier_simulator,
    django_capture_on_commit_callbacks,
):
    stock_codes(card_sku, THRESHOLD - 1)
    card_restock_check()
    restock = CardRestock.objects.get()
    CardRestock.objects.filter(pk=restock.pk).update(
        next_poll_at=timezone.now() + timezone.timedelta(hours=1)
    )

    response = client.post(
        reverse("fulfillment:supplier-callback", args=[sim_supplier.name]),
        signed_callback(supplier_simulator, restock.customer_order_no),
        content_type="application/json",
    )

    assert (response.status_code, response.content) == (200, b"success")
    assert SupplierCallback.objects.get().outcome == SupplierCallback.Outcome.APPLIED
    restock.refresh_from_db()
    # Its next look was an hour away; the callback made the (eager) worker step now.
    assert restock.placements == 1


def test_callback_for_a_number_nobody_owns_is_refused(
    client, sim_supplier, supplier_simulator
):
    response = client.post(
        reverse("fulfillment:supplier-callback", args=[sim_supplier.name]),
        signed_callback(supplier_simulator, "KQR-NOBODY"),
        content_type="application/json",
    )

    assert response.status_code == 404
    assert (
        SupplierCallback.objects.get().outcome == SupplierCallback.Outcome.UNKNOWN_ORDER
    )
