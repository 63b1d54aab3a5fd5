"""A card shop restocked from the simulator: a 优酷 card SKU mapped to its card product."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from catalog.models import Sku
from config.lib.http import json_clients_close
from fulfillment.models import CardRestock
from fulfillment.services import card_restock_advance
from fulfillment.services.restock import CARD_CODE_SEPARATOR
from fulfillment.suppliers import protocol
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import mapping_make, supplier_for_simulator

CARD_PRODUCT = "C-YK-VIP-MONTH"
CARD_COST = Decimal("20.00")  # the simulator's price for CARD_PRODUCT
THRESHOLD = 3


@pytest.fixture(autouse=True)
def _fresh_json_clients() -> Iterator[None]:
    yield
    json_clients_close()


@pytest.fixture
def card_sku(db, settings):
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True
    # The simulator answers at once: a number it does not know right after an
    # unknown placement was never created, so placing it again is safe.
    settings.TOPUP_PLACEMENT_GRACE_SECONDS = 0
    # Callbacks go to a port where nothing listens; restocks poll.
    settings.SUPPLIER_CALLBACK_BASE_URL = "http://127.0.0.1:9"
    return SkuFactory(
        code="YK-VIP-MONTH",
        name="优酷 VIP 月卡",
        delivery=Sku.Delivery.CARD_CODE,
        low_stock_threshold=THRESHOLD,
        price=Decimal("25.00"),
    )


@pytest.fixture
def sim_supplier(supplier_simulator, card_sku):
    supplier = supplier_for_simulator(supplier_simulator, name="sim")
    mapping_make(card_sku, supplier, CARD_PRODUCT, cost=CARD_COST)
    return supplier


def advance_until_done(restock: CardRestock, *, tries: int = 40) -> CardRestock:
    """Step a restock as the worker would, as soon as each step may run."""
    for _ in range(tries):
        restock.refresh_from_db()
        if not restock.is_open or restock.needs_attention:
            return restock
        CardRestock.objects.filter(pk=restock.pk).update(lease_until=None)
        card_restock_advance(restock_id=restock.pk)
        time.sleep(0.05)
    restock.refresh_from_db()
    return restock


def simulator_card_codes(simulator, customer_order_no: str) -> set[str]:
    """The plaintext the supplier sold under this number, as a shopper would redeem it.

    Asked over HTTP like the adapter does, opened with the protocol's own envelope.
    """
    reply = simulator.call("order.get", {"customer_order_no": customer_order_no})
    cards = reply.json()["data"]["cards"]
    return {
        card["number"]
        + CARD_CODE_SEPARATOR
        + protocol.card_secret_decrypt(card["secret"], simulator.secret)
        for card in cards
    }
