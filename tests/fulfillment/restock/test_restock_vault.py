"""Paid cards the vault cannot take are never lost; an operator moves a stopped restock."""

from __future__ import annotations

import pytest

from catalog.models import Sku
from config.lib.errors import DomainError
from fulfillment.models import CardCode, CardRestock
from fulfillment.services import (
    card_restock_advance,
    card_restock_check,
    card_restock_close,
    card_restock_retry_now,
)
from tests.factories.accounts import UserFactory
from tests.factories.fulfillment import stock_codes
from tests.fulfillment.restock.conftest import (
    THRESHOLD,
    advance_until_done,
    simulator_card_codes,
)

pytestmark = pytest.mark.django_db

RS = CardRestock.Status


@pytest.fixture
def placed(card_sku, sim_supplier, supplier_simulator):
    """A restock the supplier accepted and has settled, cards not fetched yet."""
    card_restock_check()
    restock = CardRestock.objects.get()
    assert card_restock_advance(restock_id=restock.pk) == "waiting"
    number = restock.customer_order_no
    supplier_simulator.wait_for(
        lambda: supplier_simulator.report()["orders"][number]["state"] == "success"
    )
    return restock


@pytest.fixture
def operator_user(db):
    return UserFactory(username="restock-operator", is_staff=True)


def test_cards_the_vault_refuses_stay_with_the_supplier_until_an_operator_retries(
    card_sku, placed, supplier_simulator, operator_user
):
    # The SKU stopped being a card SKU while its cards were on the way.
    Sku.objects.filter(pk=card_sku.pk).update(delivery=Sku.Delivery.DIRECT_TOPUP)

    assert card_restock_advance(restock_id=placed.pk) == "attention"

    placed.refresh_from_db()
    assert placed.status == RS.PLACED
    assert placed.needs_attention is True
    assert placed.next_poll_at is None
    assert placed.last_error.startswith("cards not stored")
    assert not CardCode.objects.exists()

    Sku.objects.filter(pk=card_sku.pk).update(delivery=Sku.Delivery.CARD_CODE)
    assert card_restock_check() == 0  # no second purchase while it is open
    assert card_restock_retry_now(restock_id=placed.pk, actor=operator_user) is True
    restock = advance_until_done(placed)

    assert restock.status == RS.SUCCEEDED
    assert restock.batch.codes.count() == 2 * THRESHOLD
    report = supplier_simulator.report()
    assert report["totals"]["orders_created"] == 1
    assert report["orders"][restock.customer_order_no]["placements"] == 1


def test_a_card_already_in_the_vault_is_stored_once_and_flagged(
    card_sku, placed, supplier_simulator
):
    sold = sorted(simulator_card_codes(supplier_simulator, placed.customer_order_no))
    stock_codes(card_sku, sold[:1])  # somehow already imported by hand

    restock = advance_until_done(placed)

    assert restock.status == RS.SUCCEEDED
    assert restock.needs_attention is True
    assert restock.batch.imported_count == 2 * THRESHOLD - 1
    assert restock.batch.duplicate_count == 1
    assert f"stored {2 * THRESHOLD - 1} of {2 * THRESHOLD} cards" in restock.last_error
    assert CardCode.objects.filter(sku=card_sku).count() == 2 * THRESHOLD


def test_card_restock_close_is_refused_while_the_restock_may_still_deliver(
    placed, operator_user
):
    with pytest.raises(DomainError):
        card_restock_close(restock_id=placed.pk, actor=operator_user)

    placed.refresh_from_db()
    assert placed.is_open


def test_card_restock_close_ends_a_stopped_restock_and_frees_the_sku(
    placed, operator_user, settings
):
    settings.RESTOCK_RETRY_MINUTES = 30
    CardRestock.objects.filter(pk=placed.pk).update(
        needs_attention=True, next_poll_at=None, last_error="card 1 of 6 is corrupt"
    )

    closed = card_restock_close(restock_id=placed.pk, actor=operator_user)

    assert closed.status == RS.FAILED
    assert closed.needs_attention is False
    assert closed.finished_at is not None
    assert f"closed by operator {operator_user.pk}" in closed.last_error
    assert "corrupt" in closed.last_error
    with pytest.raises(DomainError):
        card_restock_close(restock_id=placed.pk, actor=operator_user)
    assert card_restock_retry_now(restock_id=placed.pk, actor=operator_user) is False
