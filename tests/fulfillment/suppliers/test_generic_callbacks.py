"""GenericSupplierClient.callback_parse on callbacks the simulator really sends."""

from __future__ import annotations

import json
import time

import pytest

from fulfillment.suppliers import protocol
from fulfillment.suppliers.base import CallbackRejected
from tests.fulfillment.suppliers.conftest import order_no


def _place_and_settle(adapter, simulator, catcher, *, state="success", **faults):
    if faults:
        simulator.faults(**faults)
    number = order_no()
    adapter.place_direct(
        product_id="P-TX-VIP-MONTH",
        customer_order_no=number,
        charge_account="123456789",
        buy_num=1,
        notify_url=catcher.url,
    )
    simulator.complete(number, state)
    return number


def _signed(secret, **fields):
    body = {
        "order_id": "SIM1",
        "customer_order_no": "T1",
        "state": "success",
        "fail_reason": "",
        "finished_at": "2026-01-01T00:00:00+00:00",
        "timestamp": int(time.time()),
        "nonce": "n1",
        **fields,
    }
    body = {k: v for k, v in body.items() if v is not None}
    body["sign"] = protocol.sign(body, secret)
    return body


def test_callback_parse_accepts_the_suppliers_signed_callback(
    adapter, supplier_simulator, callback_catcher
):
    number = _place_and_settle(adapter, supplier_simulator, callback_catcher)

    bodies = supplier_simulator.wait_for(callback_catcher.snapshot)
    payload = adapter.callback_parse(bodies[0])

    assert payload.customer_order_no == number
    assert payload.state == "success"
    assert payload.fail_reason == ""
    assert payload.order_id.startswith("SIM")


def test_callback_parse_carries_the_fail_reason(
    adapter, supplier_simulator, callback_catcher
):
    _place_and_settle(adapter, supplier_simulator, callback_catcher, state="failed")

    bodies = supplier_simulator.wait_for(callback_catcher.snapshot)
    payload = adapter.callback_parse(bodies[0])

    assert payload.state == "failed"
    assert payload.fail_reason


def test_callback_parse_rejects_the_suppliers_badly_signed_callback(
    adapter, supplier_simulator, callback_catcher
):
    _place_and_settle(
        adapter, supplier_simulator, callback_catcher, bad_callback_signature=1
    )

    bodies = supplier_simulator.wait_for(callback_catcher.snapshot)

    with pytest.raises(CallbackRejected, match="signature"):
        adapter.callback_parse(bodies[0])


def test_callback_parse_rejects_a_callback_whose_state_was_changed(
    adapter, supplier_simulator, callback_catcher
):
    _place_and_settle(adapter, supplier_simulator, callback_catcher, state="failed")
    bodies = supplier_simulator.wait_for(callback_catcher.snapshot)
    tampered = json.loads(bodies[0])
    tampered["state"] = "success"

    with pytest.raises(CallbackRejected, match="signature"):
        adapter.callback_parse(json.dumps(tampered).encode())


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"\xff\xfe", b"[1, 2]", b'"success"'],
)
def test_callback_parse_rejects_what_is_not_a_json_object(adapter, body):
    with pytest.raises(CallbackRejected):
        adapter.callback_parse(body)


def test_callback_parse_rejects_an_unsigned_callback(adapter, supplier_simulator):
    body = _signed(supplier_simulator.secret)
    del body["sign"]

    with pytest.raises(CallbackRejected, match="signature"):
        adapter.callback_parse(json.dumps(body).encode())


@pytest.mark.parametrize(
    "fields",
    [
        {"order_id": None},
        {"customer_order_no": None},
        {"state": None},
        {"state": "refunded"},
        {"order_id": ["x"]},
    ],
)
def test_callback_parse_rejects_a_signed_callback_missing_what_we_act_on(
    adapter, supplier_simulator, fields
):
    body = _signed(supplier_simulator.secret, **fields)

    with pytest.raises(CallbackRejected):
        adapter.callback_parse(json.dumps(body).encode())


def test_callback_parse_accepts_an_empty_fail_reason_left_out(
    adapter, supplier_simulator
):
    # Empty fields are not signed (canonical string), so leaving one out is the same.
    body = _signed(supplier_simulator.secret, fail_reason=None)

    payload = adapter.callback_parse(json.dumps(body).encode())

    assert payload.fail_reason == ""
