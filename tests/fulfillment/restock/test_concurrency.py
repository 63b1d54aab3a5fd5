"""Two beat checks racing on the same low stock buy once (real transactions, Postgres)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from fulfillment.models import CardRestock
from fulfillment.services import card_restock_check
from fulfillment.services import restock as engine
from tests.factories.fulfillment import stock_codes

pytestmark = pytest.mark.django_db(transaction=True)


def test_card_restock_checks_racing_open_one_restock_and_buy_once(
    card_sku, sim_supplier, supplier_simulator, monkeypatch
):
    stock_codes(card_sku, 1)
    # Both checks have seen "low stock, nothing open" before either inserts.
    both_looked = threading.Barrier(2, timeout=10)
    real_mappings = engine.supplier_products_for_sku

    def mappings_after_both_looked(*, sku_id):
        both_looked.wait()
        return real_mappings(sku_id=sku_id)

    monkeypatch.setattr(engine, "supplier_products_for_sku", mappings_after_both_looked)
    opened: list[int] = []
    errors: list[BaseException] = []

    def check() -> None:
        try:
            opened.append(card_restock_check())
        except BaseException as exc:  # surfaced below, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=check) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert sorted(opened) == [0, 1]
    restock = CardRestock.objects.get()
    report = supplier_simulator.report()
    assert report["totals"]["orders_created"] == 1
    assert report["orders"][restock.customer_order_no]["placements"] == 1
