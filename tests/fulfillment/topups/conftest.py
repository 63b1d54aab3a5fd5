"""A top-up shop on the simulator: a QQ top-up SKU mapped to the simulator's product."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.urls import reverse

from catalog.models import Platform, Sku
from config.lib.http import json_clients_close
from orders.models import Order, SandboxTrade
from orders.services import order_place
from tests.conftest import signed_notify
from tests.factories.catalog import PlatformFactory, ProductFactory, SkuFactory
from tests.factories.fulfillment import mapping_make, supplier_for_simulator

QQ = "123456789"
NOTIFY_URL = reverse("orders:payment-notify", args=["sandbox"])


@pytest.fixture(autouse=True)
def _fresh_json_clients() -> Iterator[None]:
    yield
    json_clients_close()


@pytest.fixture
def topup_sku(db, settings):
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True
    # The simulator answers at once: a number it does not know right after an
    # unknown placement was never created, so placing it again is safe.
    settings.TOPUP_PLACEMENT_GRACE_SECONDS = 0
    platform = PlatformFactory(
        name="腾讯视频", slug="tencent", account_rule=Platform.AccountRule.QQ
    )
    return SkuFactory(
        product=ProductFactory(platform=platform, name="腾讯视频 VIP 直充"),
        code="TX-DIRECT",
        name="月卡直充",
        delivery=Sku.Delivery.DIRECT_TOPUP,
        price=Decimal("28.00"),
        face_value=Decimal("30.00"),
    )


@pytest.fixture
def sim_supplier(supplier_simulator, topup_sku):
    supplier = supplier_for_simulator(supplier_simulator, name="sim")
    mapping_make(topup_sku, supplier, "P-TX-VIP-MONTH", cost="24.00")
    return supplier


def pay(client, order, trade_no="T1"):
    """The sandbox gateway's notify for a paid trade (its own side recorded too)."""
    SandboxTrade.objects.create(
        trade_no=trade_no,
        out_trade_no=order.number,
        subject="x",
        total_amount=order.total_amount,
        notify_url="http://127.0.0.1/",
        return_url="http://127.0.0.1/",
        status=SandboxTrade.Status.PAID,
    )
    response = client.post(NOTIFY_URL, signed_notify(order, trade_no=trade_no))
    assert response.content == b"success"
    return Order.objects.get(pk=order.pk)


def place_topup(user, quantity=1, account=QQ):
    return order_place(
        user=user, sku_code="TX-DIRECT", quantity=quantity, recharge_account=account
    )
