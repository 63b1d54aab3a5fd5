"""The rest of the protocol's answers as a restock meets them, and what a card becomes."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

import pytest
from django.utils import timezone

from fulfillment.models import CardRestock, SupplierProduct
from fulfillment.services import card_restock_advance, card_restock_check
from fulfillment.services import restock as engine
from fulfillment.services.restock import card_code_text
from fulfillment.suppliers.base import SupplierCard
from tests.fulfillment.restock.conftest import CARD_COST, advance_until_done

pytestmark = pytest.mark.django_db

RS = CardRestock.Status


def _opened() -> CardRestock:
    assert card_restock_check() == 1
    return CardRestock.objects.get()


def test_card_code_text_is_number_and_password_or_the_password_alone():
    assert card_code_text(SupplierCard(number="1234", secret="PASS")) == "1234----PASS"
    assert card_code_text(SupplierCard(number="", secret="PASS")) == "PASS"


def test_card_restock_failed_order_ends_without_a_batch(
    card_sku, sim_supplier, supplier_simulator, settings
):
    settings.RESTOCK_RETRY_MINUTES = 30
    supplier_simulator.faults(fail_next=1, fail_reason="上游缺货")

    restock = advance_until_done(_opened())

    assert restock.status == RS.FAILED
    assert restock.last_error == "上游缺货"
    assert restock.batch is None
    assert restock.finished_at is not None
    # The supplier refunded it; the mapping rests, then the SKU is bought again.
    assert card_restock_check() == 0
    later = timezone.now() + dt.timedelta(minutes=31)
    assert card_restock_check(now=later) == 1


def test_card_restock_rate_limited_placement_is_sent_again_under_the_same_number(
    card_sku, sim_supplier, supplier_simulator
):
    supplier_simulator.faults(rate_limit=1, retry_after=0)
    restock = _opened()

    assert card_restock_advance(restock_id=restock.pk) == "retry_later"
    restock.refresh_from_db()
    assert restock.status == RS.NEW
    assert restock.error_code == 4290
    restock = advance_until_done(restock)

    assert restock.status == RS.SUCCEEDED
    report = supplier_simulator.report()
    assert report["totals"]["orders_created"] == 1
    assert list(report["orders"]) == [restock.customer_order_no]


def test_card_restock_order_not_yet_visible_is_queried_again_not_placed(
    card_sku, sim_supplier, supplier_simulator, settings
):
    settings.TOPUP_PLACEMENT_GRACE_SECONDS = 60
    supplier_simulator.faults(busy=1)  # 5000, order not stored
    restock = _opened()

    assert card_restock_advance(restock_id=restock.pk) == "unknown"
    assert card_restock_advance(restock_id=restock.pk) == "waiting"

    restock.refresh_from_db()
    assert restock.status == RS.UNKNOWN
    assert (restock.placements, restock.queries) == (1, 1)
    report = supplier_simulator.report()
    assert report["unplaced"] == {restock.customer_order_no: 1}
    assert report["totals"]["orders_created"] == 0


def test_card_restock_batch_costs_what_the_supplier_charged(
    card_sku, sim_supplier, supplier_simulator, caplog
):
    SupplierProduct.objects.update(cost=Decimal("18.00"))  # the mapping is stale

    restock = advance_until_done(_opened())

    assert restock.status == RS.SUCCEEDED
    assert restock.batch.cost_price == CARD_COST
    assert restock.unit_cost == CARD_COST
    assert any(
        r.levelno == logging.WARNING and "charged 20.00" in r.getMessage()
        for r in caplog.records
    )


def test_card_restock_step_is_dropped_when_its_lease_was_taken_over(
    card_sku, sim_supplier, supplier_simulator, monkeypatch
):
    restock = _opened()
    real_call = engine._call

    def slow_call(plan):
        result = real_call(plan)
        # Meanwhile the lease ran out and another worker claimed the restock.
        CardRestock.objects.filter(pk=plan.restock_id).update(
            lease_until=timezone.now() + dt.timedelta(minutes=5)
        )
        return result

    monkeypatch.setattr(engine, "_call", slow_call)

    assert card_restock_advance(restock_id=restock.pk) == "superseded"

    restock.refresh_from_db()
    assert restock.status == RS.UNKNOWN  # left for the worker holding the lease
    assert restock.supplier_order_id == ""
