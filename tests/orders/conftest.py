"""Fixtures shared by the orders tests."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from orders.services import order_place
from tests.conftest import signed_notify
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes


@pytest.fixture
def pay_orders(client, alice, settings):
    """`pay_orders(n)`: n orders of alice's, placed, then paid by n sandbox notifies."""

    def pay(count):
        settings.ORDER_MAX_UNPAID_PER_USER = count
        sku = SkuFactory(code="TX-VIP-MONTH")
        stock_codes(sku, count)
        orders = [
            order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)
            for _ in range(count)
        ]
        for n, order in enumerate(orders):
            client.post(
                reverse("orders:payment-notify", args=["sandbox"]),
                signed_notify(order, trade_no=f"T{n}"),
            )
        return orders

    return pay


@pytest.fixture
def sku():
    """A ¥25.00 card-code SKU, TX-VIP-MONTH, with three codes (a test module may
    define its own)."""
    sku = SkuFactory(code="TX-VIP-MONTH", price=Decimal("25.00"))
    stock_codes(sku, 3)
    return sku
