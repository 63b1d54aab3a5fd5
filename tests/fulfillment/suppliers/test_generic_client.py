"""GenericSupplierClient over real HTTP against the bundled simulator: good paths,
every class of the error table, and redaction of what is recorded and logged."""

from __future__ import annotations

import time
from decimal import Decimal
from types import SimpleNamespace

import httpx
import pytest

from fulfillment.suppliers import generic, protocol
from fulfillment.suppliers.base import SupplierError
from fulfillment.suppliers.generic import GenericSupplierClient
from tests.fulfillment.suppliers.conftest import QQ, card_order, direct_order, order_no

# --- good paths ---


def test_balance_returns_the_suppliers_balance_as_decimal(adapter, exchanges):
    assert adapter.balance() == Decimal("10000.00")

    assert [e.method for e in exchanges] == ["account.balance"]
    assert exchanges[0].http_status == 200
    assert exchanges[0].error == ""


def test_products_parses_the_catalog(adapter):
    products = {p.product_id: p for p in adapter.products()}

    tx = products["P-TX-VIP-MONTH"]
    assert (tx.type, tx.status, tx.stock) == ("direct", "on", "ok")
    assert tx.price == Decimal("24.00")
    assert tx.face_value == Decimal("30.00")
    assert products["C-YK-VIP-MONTH"].type == "card"


def test_place_direct_returns_the_pending_order_and_query_follows_it(
    adapter, supplier_simulator
):
    number = order_no()

    placed = direct_order(adapter, number, max_price=Decimal("30.00"))
    supplier_simulator.complete(number)
    queried = adapter.query(customer_order_no=number)

    assert placed.state in ("untreated", "processing")
    assert placed.customer_order_no == number
    assert placed.price == Decimal("24.00")
    assert placed.charge_account == QQ
    assert not placed.is_terminal
    assert queried is not None
    assert queried.state == "success"
    assert queried.order_id == placed.order_id
    assert queried.cards == ()


def test_place_direct_again_with_the_same_number_returns_the_same_order(
    adapter, supplier_simulator
):
    number = order_no()

    first = direct_order(adapter, number)
    second = direct_order(adapter, number)

    assert second.order_id == first.order_id
    report = supplier_simulator.report()
    assert report["totals"]["orders_created"] == 1
    assert report["orders"][number]["placements"] == 2


def test_query_reports_a_failed_order_with_its_reason(adapter, supplier_simulator):
    number = order_no()
    direct_order(adapter, number)

    supplier_simulator.complete(number, "failed", "账号被冻结")
    order = adapter.query(customer_order_no=number)

    assert order is not None
    assert order.state == "failed"
    assert order.fail_reason == "账号被冻结"


def test_query_returns_none_when_the_supplier_has_no_such_order(adapter, exchanges):
    assert adapter.query(customer_order_no=order_no()) is None

    assert exchanges[-1].response is not None
    assert exchanges[-1].response["code"] == protocol.ORDER_NOT_FOUND


def test_place_card_success_opens_every_card_secret(adapter, supplier_simulator):
    number = order_no()

    placed = card_order(adapter, number, buy_num=2)
    supplier_simulator.complete(number)
    order = adapter.query(customer_order_no=number)

    assert placed.cards == ()
    assert order is not None
    assert order.state == "success"
    assert len(order.cards) == 2
    for card in order.cards:
        assert len(card.number) == 16
        assert len(card.secret) == 16
        assert card.expires
        assert card.secret not in repr(order)
        assert card.number not in repr(order)


# --- rejected: no order exists ---


def _disable_app(simulator) -> None:
    httpx.post(
        f"{simulator.control_url}/apps",
        json={"app_key": simulator.app_key, "enabled": False},
        timeout=5,
    ).raise_for_status()


@pytest.mark.parametrize(
    ("arrange", "overrides", "code"),
    [
        (None, {"notify_url": "ftp://nowhere"}, protocol.INVALID_PARAMETER),
        (None, {"buy_num": 0}, protocol.INVALID_PARAMETER),
        (None, {"product_id": "P-NOPE"}, protocol.UNKNOWN_PRODUCT),
        (
            {"product_status": {"P-TX-VIP-MONTH": "off"}},
            {},
            protocol.PRODUCT_OFF_SHELF,
        ),
        ({"stock": {"P-TX-VIP-MONTH": 0}}, {}, protocol.OUT_OF_STOCK),
        (None, {"charge_account": "not-a-qq"}, protocol.CHARGE_ACCOUNT_INVALID),
        ({"balance": "1.00"}, {}, protocol.INSUFFICIENT_BALANCE),
    ],
)
def test_place_direct_is_rejected_for_each_refusal(
    adapter, supplier_simulator, arrange, overrides, code
):
    if arrange:
        supplier_simulator.faults(**arrange)

    with pytest.raises(SupplierError) as caught:
        direct_order(adapter, **overrides)

    assert caught.value.outcome == "rejected"
    assert caught.value.code == code
    assert caught.value.is_bad_account is (code == protocol.CHARGE_ACCOUNT_INVALID)
    assert supplier_simulator.report()["totals"]["orders_created"] == 0


def test_place_direct_is_rejected_when_the_number_was_used_with_another_biz(adapter):
    number = order_no()
    direct_order(adapter, number)

    with pytest.raises(SupplierError) as caught:
        direct_order(adapter, number, charge_account="987654321")

    assert (caught.value.outcome, caught.value.code) == (
        "rejected",
        protocol.ORDER_NO_REUSED,
    )


def test_calls_are_rejected_when_the_app_is_disabled(adapter, supplier_simulator):
    _disable_app(supplier_simulator)

    with pytest.raises(SupplierError) as caught:
        adapter.balance()

    assert (caught.value.outcome, caught.value.code) == (
        "rejected",
        protocol.APP_DISABLED,
    )


def test_a_reused_nonce_is_rejected(adapter, monkeypatch):
    # Only the adapter's view of `secrets` (the simulator shares this process).
    monkeypatch.setattr(
        generic, "secrets", SimpleNamespace(token_hex=lambda n: "f" * (2 * n))
    )
    adapter.balance()

    with pytest.raises(SupplierError) as caught:
        adapter.balance()

    assert (caught.value.outcome, caught.value.code) == (
        "rejected",
        protocol.NONCE_REUSED,
    )


def test_every_request_carries_a_fresh_nonce_and_a_current_timestamp(
    adapter, exchanges
):
    adapter.balance()
    adapter.balance()

    nonces = {e.request["nonce"] for e in exchanges}
    assert len(nonces) == 2
    assert all(len(n) == 32 for n in nonces)


def test_a_skewed_clock_is_rejected(adapter, monkeypatch):
    # Only the adapter's clock: the simulator runs in this process too.
    skewed = SimpleNamespace(time=lambda: time.time() - 3600, monotonic=time.monotonic)
    monkeypatch.setattr(generic, "time", skewed)

    with pytest.raises(SupplierError) as caught:
        adapter.balance()

    assert (caught.value.outcome, caught.value.code) == (
        "rejected",
        protocol.TIMESTAMP_OUT_OF_WINDOW,
    )


def test_a_private_target_is_refused_before_anything_is_sent(
    supplier_simulator, settings
):
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = False
    adapter = GenericSupplierClient(
        base_url=supplier_simulator.base_url,
        app_key=supplier_simulator.app_key,
        secret=supplier_simulator.secret,
    )

    with pytest.raises(SupplierError) as caught:
        direct_order(adapter)

    assert caught.value.outcome == "rejected"
    assert caught.value.code is None
    assert supplier_simulator.report()["totals"]["placements"] == 0


def test_a_wrong_secret_makes_every_reply_unverifiable(supplier_simulator, settings):
    # The supplier answers 1001, signed with the real secret, which we cannot check:
    # a reply we cannot verify is never trusted as a refusal (it could be forged).
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True
    adapter = GenericSupplierClient(
        base_url=supplier_simulator.base_url,
        app_key=supplier_simulator.app_key,
        secret="not-the-secret",
    )

    with pytest.raises(SupplierError) as caught:
        adapter.balance()

    assert caught.value.outcome == "unknown"
    assert "signature" in caught.value.message


# --- retry later: nothing changed ---


def test_rate_limited_placement_says_retry_later_with_retry_after(
    adapter, supplier_simulator
):
    supplier_simulator.faults(rate_limit=1, retry_after=3)
    number = order_no()

    with pytest.raises(SupplierError) as caught:
        direct_order(adapter, number)
    retried = direct_order(adapter, number)

    assert caught.value.outcome == "retry_later"
    assert caught.value.code == protocol.RATE_LIMITED
    assert caught.value.retry_after == pytest.approx(3.0)
    assert retried.customer_order_no == number
    assert supplier_simulator.report()["totals"]["orders_created"] == 1
