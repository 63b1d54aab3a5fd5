"""GenericSupplierClient over real HTTP: unknown results (the order may exist) and
redaction of everything recorded and logged."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from fulfillment.suppliers import protocol
from fulfillment.suppliers.base import SupplierError
from fulfillment.suppliers.generic import GenericSupplierClient
from tests.fulfillment.suppliers.conftest import QQ, card_order, direct_order, order_no

# --- unknown: the order may exist, query before anything else ---


@pytest.mark.parametrize(
    ("fault", "stored"),
    [
        ("busy", False),
        ("http_500_before_store", False),
        ("http_500_after_store", True),
        ("drop_reply_after_accept", True),
        ("malformed_reply", True),
        ("unsigned_reply", True),
        ("bad_reply_signature", True),
    ],
)
def test_placement_result_is_unknown_and_query_tells_the_truth(
    adapter, supplier_simulator, exchanges, fault, stored
):
    supplier_simulator.faults(**{fault: 1, "method": "order.direct.add"})
    number = order_no()

    with pytest.raises(SupplierError) as caught:
        direct_order(adapter, number)
    found = adapter.query(customer_order_no=number)

    assert caught.value.outcome == "unknown"
    assert exchanges[0].error
    assert (found is not None) is stored
    if fault == "busy":
        assert caught.value.code == protocol.SYSTEM_BUSY


def test_placing_again_after_an_unknown_result_never_buys_twice(
    adapter, supplier_simulator
):
    supplier_simulator.faults(http_500_after_store=1)
    number = order_no()
    with pytest.raises(SupplierError):
        direct_order(adapter, number)

    again = direct_order(adapter, number)

    report = supplier_simulator.report()
    assert again.customer_order_no == number
    assert report["totals"]["orders_created"] == 1
    assert report["orders"][number]["placements"] == 2


def test_a_read_timeout_is_unknown(supplier_simulator, settings, exchanges):
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True
    adapter = GenericSupplierClient(
        base_url=supplier_simulator.base_url,
        app_key=supplier_simulator.app_key,
        secret=supplier_simulator.secret,
        record=exchanges.append,
        read_timeout=0.2,
    )
    supplier_simulator.faults(latency_ms=1000)

    with pytest.raises(SupplierError) as caught:
        direct_order(adapter)

    assert caught.value.outcome == "unknown"
    assert "timeout" in caught.value.message
    assert exchanges[0].http_status is None
    assert exchanges[0].response is None


def test_a_connection_error_is_unknown(settings):
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True
    adapter = GenericSupplierClient(
        base_url="http://127.0.0.1:1", app_key="a", secret="s"
    )

    with pytest.raises(SupplierError) as caught:
        adapter.balance()

    assert caught.value.outcome == "unknown"
    assert "transport" in caught.value.message


def test_corrupt_cards_are_unknown_and_never_echoed(
    adapter, supplier_simulator, exchanges, caplog
):
    caplog.set_level(logging.DEBUG)
    supplier_simulator.faults(corrupt_cards=1)
    number = order_no()
    card_order(adapter, number, buy_num=1)
    supplier_simulator.complete(number)

    with pytest.raises(SupplierError) as caught:
        adapter.query(customer_order_no=number)

    assert caught.value.outcome == "unknown"
    assert "corrupt" in caught.value.message
    envelope = _raw_cards(supplier_simulator, number)[0]["secret"]
    assert envelope not in caught.value.message
    assert envelope not in caplog.text
    assert envelope not in repr(exchanges)
    assert "corrupt" in exchanges[-1].error  # the timeline says why


def _raw_cards(simulator, number):
    """The order as the supplier sends it, fetched with the test's own signed call."""
    reply = simulator.call("order.get", {"customer_order_no": number}).json()
    return reply["data"]["cards"]


# --- what is recorded and logged ---


def test_recorded_exchanges_and_logs_hold_no_secret_signature_orcard_order(
    adapter, supplier_simulator, exchanges, caplog
):
    caplog.set_level(logging.DEBUG)
    number = order_no()
    direct_order(adapter)
    card_order(adapter, number, buy_num=2)
    supplier_simulator.complete(number)

    order = adapter.query(customer_order_no=number)

    assert order is not None
    recorded = repr(exchanges)
    forbidden = [supplier_simulator.secret]
    forbidden += [c.secret for c in order.cards] + [c.number for c in order.cards]
    forbidden += [c["secret"] for c in _raw_cards(supplier_simulator, number)]
    for value in forbidden:
        assert value not in recorded
        assert value not in caplog.text
    for exchange in exchanges:
        assert exchange.request["sign"] == "***"
        assert exchange.response is not None
        assert exchange.response["sign"] == "***"
        assert exchange.latency_ms >= 0
    cards = exchanges[-1].response["data"]["cards"]
    assert cards == [
        {"number": "***", "secret": "***", "expires": c.expires} for c in order.cards
    ]
    # The charge account is the shopper's input: kept for investigation.
    assert exchanges[0].request["biz"]["charge_account"] == QQ


def test_a_failing_recorder_does_not_turn_success_into_an_error(
    supplier_simulator, settings
):
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True

    def broken(_exchange):
        raise RuntimeError("timeline store down")

    adapter = GenericSupplierClient(
        base_url=supplier_simulator.base_url,
        app_key=supplier_simulator.app_key,
        secret=supplier_simulator.secret,
        record=broken,
    )

    assert adapter.balance() == Decimal("10000.00")


def test_client_repr_never_shows_the_secret(adapter, supplier_simulator):
    assert supplier_simulator.secret not in repr(adapter)
