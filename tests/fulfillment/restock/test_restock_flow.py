"""Card restocks (自动补货) in-process (eager tasks) against the simulator over HTTP."""

from __future__ import annotations

import datetime as dt
import json
import logging
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from fulfillment import vault
from fulfillment.availability import sku_availability
from fulfillment.models import (
    CardCode,
    CardRestock,
    CodeBatch,
    SupplierCallback,
    TopUpEvent,
)
from fulfillment.services import card_restock_advance, card_restock_check
from orders.services import order_place
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import (
    mapping_make,
    stock_codes,
    supplier_for_simulator,
)
from tests.fulfillment.restock.conftest import (
    CARD_COST,
    CARD_PRODUCT,
    THRESHOLD,
    advance_until_done,
    simulator_card_codes,
)

pytestmark = pytest.mark.django_db

RS = CardRestock.Status


def _records_as_text() -> list[str]:
    """Every place outside the vault where a card could have been written down."""
    dump = json.dumps
    return [
        dump(list(CardRestock.objects.values()), default=str),
        dump(list(TopUpEvent.objects.values()), default=str),
        dump(list(SupplierCallback.objects.values()), default=str),
        dump(list(CodeBatch.objects.values()), default=str),
        dump(list(CardCode.objects.values("hint", "ciphertext")), default=str),
        " ".join(f"{r} {r!r}" for r in CardRestock.objects.all()),
    ]


def _assert_only_in_vault(plaintexts: set[str], caplog) -> None:
    pieces = plaintexts | {
        part for code in plaintexts for part in code.split("----") if part
    }
    places = [caplog.text, *_records_as_text()]
    leaks = [piece for piece in pieces for place in places if piece in place]
    assert leaks == []


def _wait_until_settled(simulator, restock: CardRestock) -> None:
    """Until the supplier's order is terminal, so every query sees its cards."""
    number = restock.customer_order_no
    simulator.wait_for(
        lambda: simulator.report()["orders"][number]["state"] == "success"
    )


def _open_restock(django_capture_on_commit_callbacks) -> CardRestock:
    """The beat check, with its first step run as the worker would run it."""
    with django_capture_on_commit_callbacks(execute=True):
        assert card_restock_check() == 1
    return CardRestock.objects.get()


# --- Opening restocks ----------------------------------------------------------


def test_card_restock_check_opens_one_restock_when_stock_is_below_threshold(
    card_sku, sim_supplier, supplier_simulator
):
    stock_codes(card_sku, THRESHOLD - 1)

    opened = card_restock_check()

    assert opened == 1
    restock = CardRestock.objects.get()
    assert restock.sku == card_sku
    assert restock.supplier == sim_supplier
    assert restock.product_id == CARD_PRODUCT
    assert restock.status == RS.NEW
    assert restock.quantity == 2 * THRESHOLD
    assert restock.unit_cost == CARD_COST
    assert restock.customer_order_no.startswith(f"KQR{card_sku.id}-")
    assert len(restock.customer_order_no) <= 50
    # Nothing is sent before the transaction that fixed the number commits.
    assert supplier_simulator.report()["totals"]["placements"] == 0


def test_card_restock_check_does_nothing_while_a_restock_is_open(
    card_sku, sim_supplier
):
    card_restock_check()
    first = CardRestock.objects.get()

    opened = card_restock_check()

    assert opened == 0
    assert list(CardRestock.objects.all()) == [first]


def test_card_restock_check_leaves_skus_alone_when_not_low_or_not_restockable(
    card_sku, sim_supplier, settings
):
    stock_codes(card_sku, THRESHOLD)  # at the threshold is not below it
    inactive = SkuFactory(is_active=False, low_stock_threshold=5)
    SkuFactory(low_stock_threshold=5)  # mapped to nothing
    opted_out = SkuFactory(low_stock_threshold=0)
    disabled = SkuFactory(low_stock_threshold=5)
    for sku in (inactive, opted_out):
        mapping_make(sku, sim_supplier, CARD_PRODUCT, cost=CARD_COST)
    mapping_make(disabled, sim_supplier, CARD_PRODUCT, cost=CARD_COST, enabled=False)

    opened = card_restock_check()

    assert opened == 0
    assert not CardRestock.objects.exists()


def test_card_restock_quantity_follows_the_settings(card_sku, sim_supplier, settings):
    settings.RESTOCK_BATCH_SIZE = 80
    settings.RESTOCK_MAX_PER_ORDER = 12

    card_restock_check()

    assert CardRestock.objects.get().quantity == 12


def test_card_restock_one_open_per_sku_is_enforced_by_the_database(
    card_sku, sim_supplier
):
    card_restock_check()
    first = CardRestock.objects.get()

    with pytest.raises(IntegrityError), transaction.atomic():
        CardRestock.objects.create(
            sku=card_sku,
            supplier=first.supplier,
            supplier_product=first.supplier_product,
            product_id=first.product_id,
            customer_order_no="KQR-RACE",
            quantity=1,
            unit_cost=Decimal("1.00"),
        )

    assert CardRestock.objects.count() == 1


# --- Success -----------------------------------------------------------------


def test_card_restock_seals_bought_cards_into_a_new_batch_at_supplier_cost(
    card_sku,
    sim_supplier,
    supplier_simulator,
    alice,
    caplog,
    django_capture_on_commit_callbacks,
):
    caplog.set_level(logging.DEBUG)
    stock_codes(card_sku, 1)
    restock = _open_restock(django_capture_on_commit_callbacks)

    restock = advance_until_done(restock)

    assert restock.status == RS.SUCCEEDED
    assert restock.needs_attention is False
    batch = restock.batch
    assert batch is not None
    assert batch.codes.count() == batch.imported_count == 2 * THRESHOLD
    assert batch.cost_price == CARD_COST
    assert batch.source == "supplier:sim"
    assert restock.supplier_order_id
    assert restock.supplier_order_id in batch.note
    assert batch.created_by is None
    # The simulator's cards run a year; the batch expires with them.
    assert batch.expires_at is not None
    assert batch.expires_at > timezone.now() + dt.timedelta(days=360)
    report = supplier_simulator.report()
    assert report["totals"]["orders_created"] == 1
    assert report["orders"][restock.customer_order_no]["placements"] == 1
    assert report["orders"][restock.customer_order_no]["buy_num"] == 2 * THRESHOLD

    # Sellable at once: the storefront counts them and a shopper can buy them.
    (availability,) = sku_availability(skus=[card_sku]).values()
    assert availability.available == 1 + 2 * THRESHOLD
    order = order_place(user=alice, sku_code=card_sku.code, quantity=5)
    assert order.lines.get().codes.count() == 5

    # The plaintext is in the vault, exactly what the supplier sold, and nowhere else.
    sold = simulator_card_codes(supplier_simulator, restock.customer_order_no)
    in_vault = {
        vault.open_sealed(ciphertext=code.ciphertext, key_id=code.key_id)
        for code in batch.codes.all()
    }
    assert in_vault == sold
    assert len(sold) == 2 * THRESHOLD
    _assert_only_in_vault(sold, caplog)


def test_card_restock_is_not_repeated_once_stock_is_back(
    card_sku, sim_supplier, supplier_simulator, django_capture_on_commit_callbacks
):
    restock = advance_until_done(_open_restock(django_capture_on_commit_callbacks))
    assert restock.status == RS.SUCCEEDED

    opened = card_restock_check()

    assert opened == 0
    assert supplier_simulator.report()["totals"]["orders_created"] == 1


# --- Unknown answers: query, never buy again -----------------------------------


def test_card_restock_unknown_reply_is_queried_not_bought_again(
    card_sku, sim_supplier, supplier_simulator, django_capture_on_commit_callbacks
):
    supplier_simulator.faults(drop_reply_after_accept=1)

    restock = _open_restock(django_capture_on_commit_callbacks)
    assert restock.status == RS.UNKNOWN
    restock = advance_until_done(restock)

    assert restock.status == RS.SUCCEEDED
    assert restock.placements == 1
    assert restock.queries >= 1
    assert restock.batch.codes.count() == 2 * THRESHOLD
    report = supplier_simulator.report()
    assert report["totals"]["orders_created"] == 1
    assert report["orders"][restock.customer_order_no]["placements"] == 1


def test_card_restock_busy_supplier_is_placed_again_under_the_same_number(
    card_sku, sim_supplier, supplier_simulator, django_capture_on_commit_callbacks
):
    supplier_simulator.faults(busy=1)

    restock = advance_until_done(_open_restock(django_capture_on_commit_callbacks))

    assert restock.status == RS.SUCCEEDED
    assert CardRestock.objects.count() == 1
    report = supplier_simulator.report()
    assert report["totals"]["orders_created"] == 1
    assert report["unplaced"] == {}
    assert report["orders"][restock.customer_order_no]["placements"] == 2


def test_card_restock_corrupt_cards_are_never_bought_again_and_wait_for_an_operator(
    card_sku,
    sim_supplier,
    supplier_simulator,
    settings,
    caplog,
    django_capture_on_commit_callbacks,
):
    settings.RESTOCK_MAX_TRIES = 4
    supplier_simulator.faults(corrupt_cards=1)
    stock_codes(card_sku, 1)
    restock = _open_restock(django_capture_on_commit_callbacks)
    _wait_until_settled(supplier_simulator, restock)

    restock = advance_until_done(restock)

    assert restock.is_open
    assert restock.needs_attention is True
    assert restock.next_poll_at is None
    assert "corrupt" in restock.last_error
    assert restock.batch is None
    assert restock.placements == 1
    assert restock.placements + restock.queries == 4
    assert CardCode.objects.filter(sku=card_sku).count() == 1
    report = supplier_simulator.report()
    assert report["totals"]["orders_created"] == 1
    assert report["orders"][restock.customer_order_no]["placements"] == 1
    assert any(
        r.levelno == logging.WARNING and restock.customer_order_no in r.getMessage()
        for r in caplog.records
    )
    # Paid for and unopened: no later check buys for this SKU until someone looked.
    assert card_restock_check() == 0
    assert supplier_simulator.report()["totals"]["orders_created"] == 1


def test_card_restock_missing_cards_in_a_success_are_queried_again(
    card_sku, sim_supplier, supplier_simulator, settings, monkeypatch
):
    """A success that carries fewer cards than bought is an unknown, not a success."""
    from fulfillment.services import restock as engine

    real_call = engine._call

    def fewer_cards(plan):
        result = real_call(plan)
        if result.order is not None and result.order.cards:
            from dataclasses import replace

            result.order = replace(result.order, cards=result.order.cards[:1])
        return result

    monkeypatch.setattr(engine, "_call", fewer_cards)
    settings.RESTOCK_MAX_TRIES = 3
    card_restock_check()
    restock = CardRestock.objects.get()
    assert card_restock_advance(restock_id=restock.pk) == "waiting"
    _wait_until_settled(supplier_simulator, restock)

    restock = advance_until_done(restock)

    assert restock.is_open
    assert restock.needs_attention is True
    assert "1 of 6 cards" in restock.last_error
    assert not CardCode.objects.filter(sku=card_sku).exists()
    assert supplier_simulator.report()["totals"]["orders_created"] == 1


# --- Refusals: end the restock, the next check tries the next mapping -----------


def test_card_restock_out_of_stock_is_rejected_and_the_next_check_fails_over(
    card_sku, sim_supplier, supplier_simulator, django_capture_on_commit_callbacks
):
    backup = supplier_for_simulator(supplier_simulator, name="backup", priority=200)
    mapping_make(card_sku, backup, "C-IQ-VIP-MONTH", cost="21.00")
    supplier_simulator.faults(stock={CARD_PRODUCT: 0})

    first = _open_restock(django_capture_on_commit_callbacks)

    first.refresh_from_db()
    assert first.status == RS.REJECTED
    assert first.error_code == 2003
    assert first.batch is None
    assert first.finished_at is not None
    assert not CardCode.objects.filter(sku=card_sku).exists()
    assert supplier_simulator.report()["totals"]["orders_created"] == 0

    with django_capture_on_commit_callbacks(execute=True):
        assert card_restock_check() == 1
    second = advance_until_done(CardRestock.objects.exclude(pk=first.pk).get())

    assert second.supplier == backup
    assert second.status == RS.SUCCEEDED
    assert second.customer_order_no != first.customer_order_no
    assert second.batch.cost_price == Decimal("21.00")
    assert supplier_simulator.report()["totals"]["orders_created"] == 1


def test_card_restock_refused_mapping_rests_before_it_is_tried_again(
    card_sku, sim_supplier, supplier_simulator, settings
):
    settings.RESTOCK_RETRY_MINUTES = 30
    supplier_simulator.faults(balance="10.00")
    card_restock_check()
    first = CardRestock.objects.get()

    assert card_restock_advance(restock_id=first.pk) == "rejected"
    first.refresh_from_db()
    assert first.error_code == 3001

    assert card_restock_check() == 0  # the only mapping refused a moment ago
    later = timezone.now() + dt.timedelta(minutes=31)
    assert card_restock_check(now=later) == 1


def test_card_restock_advance_is_busy_for_a_finished_or_held_restock(
    card_sku, sim_supplier, supplier_simulator
):
    card_restock_check()
    restock = CardRestock.objects.get()
    CardRestock.objects.filter(pk=restock.pk).update(
        lease_until=timezone.now() + dt.timedelta(minutes=1)
    )

    assert card_restock_advance(restock_id=restock.pk) == "busy"

    CardRestock.objects.filter(pk=restock.pk).update(
        lease_until=None, status=RS.REJECTED
    )
    assert card_restock_advance(restock_id=restock.pk) == "busy"
    assert supplier_simulator.report()["totals"]["placements"] == 0
