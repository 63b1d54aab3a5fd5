"""After-sales fixtures: a card-code SKU with stock, and orders paid through the sandbox."""

from __future__ import annotations

import pytest
from django.urls import reverse

from orders.models import Order
from orders.services import order_place
from tests.conftest import signed_notify
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes
from tests.factories.orders import sandbox_trade_paid

NOTIFY_URL = reverse("orders:payment-notify", args=["sandbox"])


@pytest.fixture
def sku(db):
    """A card-code SKU at 25.00 with five codes in stock."""
    sku = SkuFactory(code="TX-VIP-MONTH")
    stock_codes(sku, 5)
    return sku


def pay(client, order, trade_no="T1"):
    """Pay through the sandbox exactly as the hosted page would leave it."""
    sandbox_trade_paid(order, trade_no=trade_no)
    response = client.post(NOTIFY_URL, signed_notify(order, trade_no=trade_no))
    assert response.content == b"success"
    return Order.objects.get(pk=order.pk)


@pytest.fixture
def paid_order(client, alice, sku, django_capture_on_commit_callbacks):
    """Alice's delivered order of two codes (50.00), paid by sandbox trade T1."""
    order = order_place(user=alice, sku_code=sku.code, quantity=2)
    with django_capture_on_commit_callbacks(execute=True):
        return pay(client, order)
