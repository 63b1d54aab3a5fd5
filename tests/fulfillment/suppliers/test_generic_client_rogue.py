"""GenericSupplierClient against a misbehaving supplier, over real HTTP.

The simulator follows the protocol; real suppliers sometimes do not. This tiny
server answers each request with a scripted reply, correctly signed unless told
otherwise, so the adapter's defences against well-signed nonsense are exercised:
every such reply must end as `unknown` (never as an order or a refusal we made up).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.utils import timezone

from fulfillment.suppliers import protocol
from fulfillment.suppliers.base import SupplierError
from fulfillment.suppliers.generic import GenericSupplierClient
from tests.fulfillment.suppliers.conftest import direct_order

SECRET = "rogue-secret"
NUMBER = "T-ROGUE-1"


def _order(**fields: Any) -> dict[str, Any]:
    return {
        "order_id": "R1",
        "customer_order_no": NUMBER,
        "product_id": "P-1",
        "charge_account": "123456789",
        "buy_num": 1,
        "price": "24.00",
        "state": "processing",
        "fail_reason": "",
        **fields,
    }


class _Rogue(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RogueHandler)
        self.status = 200
        self.headers: dict[str, str] = {}
        self.reply: Any = {"code": 0, "message": "ok", "data": {}}
        self.sign = True

    def script(
        self, reply: Any, *, status: int = 200, sign: bool = True, **headers: str
    ) -> None:
        self.reply, self.status, self.sign, self.headers = reply, status, sign, headers


class _RogueHandler(BaseHTTPRequestHandler):
    server: _Rogue

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        reply = self.server.reply
        if isinstance(reply, dict) and self.server.sign:
            reply = {**reply, "sign": protocol.sign(reply, SECRET)}
        body = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
        self.send_response(self.server.status)
        for name, value in self.server.headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def rogue() -> Iterator[_Rogue]:
    server = _Rogue()
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def rogue_adapter(rogue, settings, exchanges) -> GenericSupplierClient:
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True
    return GenericSupplierClient(
        base_url=f"http://127.0.0.1:{rogue.server_address[1]}",
        app_key="rogue",
        secret=SECRET,
        record=exchanges.append,
    )


def _ok(data: Any) -> dict[str, Any]:
    return {"code": 0, "message": "ok", "data": data}


@pytest.mark.parametrize(
    ("reply", "status", "why"),
    [
        (_ok(_order(price="abc")), 200, "price"),
        (_ok(_order(price=None)), 200, "price"),
        (_ok(_order(price="Infinity")), 200, "price"),
        (_ok(_order(price=True)), 200, "price"),
        (_ok(_order(state="refunded")), 200, "state"),
        (_ok(_order(order_id=None)), 200, "order_id"),
        (_ok(_order(order_id={"x": 1})), 200, "order_id"),
        (_ok(_order(buy_num="two")), 200, "buy_num"),
        (_ok(_order(customer_order_no="T-SOMEONE-ELSE")), 200, "another order"),
        ({"code": 0, "message": "ok", "data": [1]}, 200, "not an object"),
        ({"code": "0", "message": "ok", "data": {}}, 200, "no code"),
        ({"code": 9999, "message": "new error", "data": {}}, 200, "9999"),
        ({"code": 0, "message": "ok", "data": {}}, 404, "HTTP 404"),
        ({"code": 0, "message": "ok", "data": {}}, 302, "HTTP 302"),
        (b"[1, 2, 3]", 200, "not a JSON object"),
    ],
)
def test_well_signed_nonsense_is_unknown(
    rogue, rogue_adapter, exchanges, reply, status, why
):
    rogue.script(reply, status=status)

    with pytest.raises(SupplierError) as caught:
        direct_order(rogue_adapter, NUMBER)

    assert caught.value.outcome == "unknown"
    assert why in caught.value.message
    assert exchanges[-1].error


def test_a_successful_card_order_with_too_few_cards_is_unknown(rogue, rogue_adapter):
    card = {"number": "1", "secret": protocol.card_secret_encrypt("PLAIN", SECRET)}
    rogue.script(_ok(_order(state="success", buy_num=2, cards=[card])))

    with pytest.raises(SupplierError) as caught:
        rogue_adapter.query(customer_order_no=NUMBER)

    assert caught.value.outcome == "unknown"
    assert "2 cards" in caught.value.message


@pytest.mark.parametrize("card", ["not-a-card", {"number": "1"}, {"secret": 42}])
def test_a_malformed_card_is_corrupt(rogue, rogue_adapter, exchanges, card):
    rogue.script(_ok(_order(state="success", cards=[card])))

    with pytest.raises(SupplierError, match="corrupt") as caught:
        rogue_adapter.query(customer_order_no=NUMBER)

    assert caught.value.outcome == "unknown"
    redacted = (
        {**card, "number": "***", "secret": "***"} if isinstance(card, dict) else "***"
    )
    assert exchanges[-1].response["data"]["cards"] == [redacted]


def test_cards_that_are_not_a_list_are_redacted_whole(rogue, rogue_adapter, exchanges):
    rogue.script(_ok(_order(state="success", cards="NUMBER:SECRET")))

    with pytest.raises(SupplierError):
        rogue_adapter.query(customer_order_no=NUMBER)

    assert exchanges[-1].response["data"]["cards"] == "***"


def test_a_card_order_query_opens_cards_without_a_number(rogue, rogue_adapter):
    card = {"secret": protocol.card_secret_encrypt("PLAIN-1", SECRET), "expires": ""}
    rogue.script(_ok(_order(state="success", cards=[card])))

    order = rogue_adapter.query(customer_order_no=NUMBER)

    assert order is not None
    assert [(c.number, c.secret) for c in order.cards] == [("", "PLAIN-1")]


def test_code_4290_in_a_200_reply_is_retry_later(rogue, rogue_adapter):
    rogue.script({"code": 4290, "message": "slow down", "data": {}}, Retry_After="7")

    with pytest.raises(SupplierError) as caught:
        rogue_adapter.balance()

    assert (caught.value.outcome, caught.value.retry_after) == ("retry_later", 7.0)


def test_retry_after_may_be_an_http_date(rogue, rogue_adapter):
    when = format_datetime(timezone.now() + timezone.timedelta(seconds=30), usegmt=True)
    rogue.script(
        {"code": 4290, "message": "", "data": {}}, status=429, Retry_After=when
    )

    with pytest.raises(SupplierError) as caught:
        rogue_adapter.balance()

    assert caught.value.outcome == "retry_later"
    assert 20 <= caught.value.retry_after <= 31


@pytest.mark.parametrize("header", [None, "soon"])
def test_a_429_without_a_usable_retry_after_still_says_retry_later(
    rogue, rogue_adapter, header
):
    headers = {"Retry_After": header} if header else {}
    rogue.script({"code": 4290, "message": "", "data": {}}, status=429, **headers)

    with pytest.raises(SupplierError) as caught:
        rogue_adapter.balance()

    assert caught.value.outcome == "retry_later"
    assert caught.value.retry_after is None


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ({"balance": "lots"}, "balance"),
        ({}, "balance"),
    ],
)
def test_a_malformed_balance_is_unknown(rogue, rogue_adapter, data, why):
    rogue.script(_ok(data))

    with pytest.raises(SupplierError, match=why) as caught:
        rogue_adapter.balance()

    assert caught.value.outcome == "unknown"


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"products": ["x"]},
        {
            "products": [
                {
                    "product_id": "P",
                    "type": "gift",
                    "face_value": "1",
                    "price": "1",
                    "status": "on",
                    "stock": "ok",
                }
            ]
        },
    ],
)
def test_a_malformed_product_list_is_unknown(rogue, rogue_adapter, data):
    rogue.script(_ok(data))

    with pytest.raises(SupplierError) as caught:
        rogue_adapter.products()

    assert caught.value.outcome == "unknown"


def test_a_reply_with_no_data_is_an_empty_object(rogue, rogue_adapter):
    rogue.script({"code": 0, "message": "ok"})

    with pytest.raises(SupplierError, match="products"):
        rogue_adapter.products()
