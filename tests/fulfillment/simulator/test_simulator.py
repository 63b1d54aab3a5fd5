"""The bundled supplier simulator, exercised over real HTTP on loopback.

Requests are signed with fulfillment.suppliers.protocol, exactly as the
adapter signs them; callbacks go to a tiny ThreadingHTTPServer in the test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from fulfillment.suppliers import protocol

NOTIFY_PATH = "/suppliers/callback/sim/"
REPO_ROOT = Path(__file__).resolve().parents[3]


class CallbackReceiver:
    """A loopback callback endpoint answering from a script (then `success`)."""

    def __init__(self, answers: list[tuple[int, str]] | None = None) -> None:
        self.answers = list(answers or [])
        self.received: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._lock:
                    receiver.raw.append(body)
                    receiver.received.append(json.loads(body))
                    status, text = (
                        receiver.answers.pop(0)
                        if receiver.answers
                        else (200, "success")
                    )
                self.send_response(status)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text.encode())

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{NOTIFY_PATH}"
        threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        ).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    r = CallbackReceiver()
    yield r
    r.stop()


def _direct(
    number: str, notify_url: str = "http://127.0.0.1:9/none", **fields: Any
) -> dict[str, Any]:
    return {
        "product_id": "P-TX-VIP-MONTH",
        "customer_order_no": number,
        "charge_account": "10001",
        "buy_num": 1,
        "notify_url": notify_url,
        **fields,
    }


def _card(
    number: str, buy_num: int = 1, notify_url: str = "http://127.0.0.1:9/none"
) -> dict[str, Any]:
    return {
        "product_id": "C-YK-VIP-MONTH",
        "customer_order_no": number,
        "buy_num": buy_num,
        "notify_url": notify_url,
    }


def _reply(sim: Any, response: httpx.Response) -> tuple[int, dict[str, Any]]:
    """(code, data) of a reply whose signature must verify."""
    body = response.json()
    assert protocol.verify(body, sim.secret), body
    return body["code"], body["data"]


def _settled(sim: Any, number: str) -> dict[str, Any]:
    def terminal() -> dict[str, Any] | None:
        _, data = _reply(sim, sim.call("order.get", {"customer_order_no": number}))
        return data if data["state"] in protocol.TERMINAL_STATES else None

    return dict(sim.wait_for(terminal))


# -- verification -------------------------------------------------------------
def test_product_list_returns_default_catalog_signed(supplier_simulator):
    code, data = _reply(supplier_simulator, supplier_simulator.call("product.list"))

    assert code == 0
    by_id = {p["product_id"]: p for p in data["products"]}
    assert set(by_id) == {
        "P-TX-VIP-MONTH",
        "P-TX-VIP-QUARTER",
        "P-NE-MUSIC-MONTH",
        "P-IQ-VIP-MONTH",
        "C-YK-VIP-MONTH",
        "C-IQ-VIP-MONTH",
    }
    assert by_id["P-TX-VIP-MONTH"] == {
        "product_id": "P-TX-VIP-MONTH",
        "name": "腾讯视频 VIP 月卡直充",
        "type": "direct",
        "face_value": "30.00",
        "price": "24.00",
        "status": "on",
        "stock": "ok",
    }
    assert by_id["C-IQ-VIP-MONTH"]["type"] == "card"


def test_account_balance_returns_configured_amount(supplier_simulator):
    assert _reply(supplier_simulator, supplier_simulator.call("account.balance")) == (
        0,
        {"balance": "10000.00"},
    )


def test_request_rejected_with_1001_when_signature_wrong(supplier_simulator):
    response = supplier_simulator.call("account.balance", secret="not-the-secret")

    assert _reply(supplier_simulator, response)[0] == protocol.BAD_SIGNATURE


OUT_OF_WINDOW = protocol.TIMESTAMP_OUT_OF_WINDOW


class _StoppedClock:
    """The simulator's `time` module with its clock stopped at `now`: a request
    signed `skew` seconds off is that far off when checked, however busy the
    machine (a live clock let +301 arrive inside the window)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.mark.parametrize(
    ("skew", "code"),
    [(-301, OUT_OF_WINDOW), (301, OUT_OF_WINDOW), (-300, 0), (300, 0)],
)
def test_request_rejected_with_1002_when_timestamp_outside_window(
    supplier_simulator, monkeypatch, skew, code
):
    now = int(time.time())
    monkeypatch.setattr("fulfillment.simulator.server.time", _StoppedClock(now))

    response = supplier_simulator.call("account.balance", timestamp=now + skew)

    assert _reply(supplier_simulator, response)[0] == code


def test_request_rejected_with_1003_when_nonce_reused(supplier_simulator):
    first = supplier_simulator.call("account.balance", nonce="same-nonce")
    second = supplier_simulator.call("account.balance", nonce="same-nonce")

    assert _reply(supplier_simulator, first)[0] == 0
    assert _reply(supplier_simulator, second)[0] == protocol.NONCE_REUSED


def test_request_rejected_with_1004_when_app_unknown_or_disabled(supplier_simulator):
    unknown = supplier_simulator.call(
        "account.balance", app_key="nobody", secret="x"
    ).json()
    httpx.post(
        f"{supplier_simulator.control_url}/apps",
        json={"app_key": supplier_simulator.app_key, "enabled": False},
    ).raise_for_status()
    disabled = supplier_simulator.call("account.balance")

    assert (unknown["code"], unknown["sign"]) == (protocol.APP_DISABLED, "")
    assert _reply(supplier_simulator, disabled)[0] == protocol.APP_DISABLED


@pytest.mark.parametrize(
    "fields",
    [
        {"customer_order_no": "N" * 51},
        {"buy_num": 0},
        {"buy_num": "x"},
        {"notify_url": ""},
        {"charge_account": ""},
        {"max_price": "-1"},
    ],
)
def test_place_rejected_with_1101_when_biz_invalid(supplier_simulator, fields):
    response = supplier_simulator.call("order.direct.add", _direct("N-1101", **fields))

    assert _reply(supplier_simulator, response)[0] == protocol.INVALID_PARAMETER
    assert supplier_simulator.report()["orders"] == {}


# -- orders -------------------------------------------------------------------
def test_direct_order_settles_to_success_and_charges_balance(supplier_simulator):
    code, placed = _reply(
        supplier_simulator,
        supplier_simulator.call("order.direct.add", _direct("D-1", buy_num=2)),
    )
    settled = _settled(supplier_simulator, "D-1")

    assert code == 0
    assert placed["state"] in (protocol.UNTREATED, protocol.PROCESSING)
    assert (placed["price"], placed["buy_num"], placed["charge_account"]) == (
        "24.00",
        2,
        "10001",
    )
    assert settled["state"] == protocol.SUCCESS
    assert settled["order_id"] == placed["order_id"]
    assert settled["finished_at"]
    assert "cards" not in settled
    assert _reply(supplier_simulator, supplier_simulator.call("account.balance"))[
        1
    ] == {"balance": "9952.00"}


def test_place_returns_same_order_when_replayed_with_same_biz(supplier_simulator):
    biz = _direct("D-IDEM")

    _, first = _reply(
        supplier_simulator, supplier_simulator.call("order.direct.add", biz)
    )
    _, second = _reply(
        supplier_simulator, supplier_simulator.call("order.direct.add", biz)
    )

    assert second["order_id"] == first["order_id"]
    report = supplier_simulator.report()
    assert report["orders"]["D-IDEM"]["placements"] == 2
    assert report["totals"] == {"orders_created": 1, "placements": 2, "spent": "24.00"}
    assert report["balance"] == "9976.00"


def test_place_rejected_with_3002_when_number_reused_with_different_biz(
    supplier_simulator,
):
    supplier_simulator.call("order.direct.add", _direct("D-REUSE"))

    response = supplier_simulator.call(
        "order.direct.add", _direct("D-REUSE", charge_account="10002")
    )
    as_card = supplier_simulator.call("order.card.add", _card("D-REUSE"))

    assert _reply(supplier_simulator, response)[0] == protocol.ORDER_NO_REUSED
    assert _reply(supplier_simulator, as_card)[0] == protocol.ORDER_NO_REUSED
    assert supplier_simulator.report()["totals"]["orders_created"] == 1


def test_order_get_returns_3003_when_number_unknown(supplier_simulator):
    response = supplier_simulator.call("order.get", {"customer_order_no": "NEVER"})

    assert _reply(supplier_simulator, response)[0] == protocol.ORDER_NOT_FOUND


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"product_id": "P-NOPE"}, protocol.UNKNOWN_PRODUCT),
        ({"charge_account": "0123"}, protocol.CHARGE_ACCOUNT_INVALID),
        (
            {"product_id": "P-NE-MUSIC-MONTH", "charge_account": "10001"},
            protocol.CHARGE_ACCOUNT_INVALID,
        ),
        (
            {"product_id": "P-NE-MUSIC-MONTH", "charge_account": "13800138000"},
            protocol.OK,
        ),
    ],
)
def test_place_checks_product_and_account(supplier_simulator, fields, code):
    response = supplier_simulator.call("order.direct.add", _direct("D-CHECK", **fields))

    assert _reply(supplier_simulator, response)[0] == code


def test_place_rejected_with_2002_when_product_off_shelf(supplier_simulator):
    supplier_simulator.faults(product_status={"P-TX-VIP-MONTH": "off"})

    response = supplier_simulator.call("order.direct.add", _direct("D-OFF"))

    assert _reply(supplier_simulator, response)[0] == protocol.PRODUCT_OFF_SHELF


def test_place_rejected_with_2004_when_account_marked_invalid(supplier_simulator):
    supplier_simulator.invalidate_accounts("10001")

    response = supplier_simulator.call("order.direct.add", _direct("D-BAD"))

    assert _reply(supplier_simulator, response)[0] == protocol.CHARGE_ACCOUNT_INVALID


def test_place_rejected_with_3001_when_balance_runs_out(supplier_simulator):
    supplier_simulator.faults(balance="30.00")

    first = supplier_simulator.call("order.direct.add", _direct("D-B1"))
    second = supplier_simulator.call("order.direct.add", _direct("D-B2"))

    assert _reply(supplier_simulator, first)[0] == 0
    assert _reply(supplier_simulator, second)[0] == protocol.INSUFFICIENT_BALANCE
    assert supplier_simulator.report()["balance"] == "6.00"


def test_place_rejected_with_2003_when_stock_runs_out(supplier_simulator):
    supplier_simulator.faults(stock={"C-YK-VIP-MONTH": 2})

    first = supplier_simulator.call("order.card.add", _card("C-S1", buy_num=2))
    second = supplier_simulator.call("order.card.add", _card("C-S2"))

    assert _reply(supplier_simulator, first)[0] == 0
    assert _reply(supplier_simulator, second)[0] == protocol.OUT_OF_STOCK
    products = _reply(supplier_simulator, supplier_simulator.call("product.list"))[1][
        "products"
    ]
    assert {p["product_id"]: p["stock"] for p in products}["C-YK-VIP-MONTH"] == "out"


def test_set_product_adds_a_product_that_can_be_ordered(supplier_simulator):
    supplier_simulator.set_product(
        "C-NEW", name="New card", type="card", face_value="5", price="4.5", stock=3
    )

    code, data = _reply(
        supplier_simulator,
        supplier_simulator.call(
            "order.card.add", {**_card("C-NEW-1"), "product_id": "C-NEW"}
        ),
    )

    assert (code, data["price"]) == (0, "4.50")


def test_card_order_secrets_decrypt_and_numbers_are_unique(supplier_simulator):
    supplier_simulator.call("order.card.add", _card("C-OK", buy_num=3))

    cards = _settled(supplier_simulator, "C-OK")["cards"]

    assert len(cards) == 3
    assert len({c["number"] for c in cards}) == 3
    secrets_ = [
        protocol.card_secret_decrypt(c["secret"], supplier_simulator.secret)
        for c in cards
    ]
    assert all(len(s) == 16 for s in secrets_)
    assert all(c["expires"] for c in cards)


def test_card_order_secrets_fail_to_decrypt_when_corrupt_cards(supplier_simulator):
    supplier_simulator.faults(corrupt_cards=1)
    supplier_simulator.call("order.card.add", _card("C-BAD"))

    card = _settled(supplier_simulator, "C-BAD")["cards"][0]

    with pytest.raises(ValueError, match="corrupt"):
        protocol.card_secret_decrypt(card["secret"], supplier_simulator.secret)


# -- reply faults -------------------------------------------------------------
def test_latency_delays_every_reply(supplier_simulator):
    supplier_simulator.faults(latency_ms=150, latency_jitter_ms=50)

    started = time.monotonic()
    supplier_simulator.call("account.balance")

    assert 0.15 <= time.monotonic() - started < 2


def test_drop_reply_close_stores_order_but_client_sees_disconnect(supplier_simulator):
    supplier_simulator.faults(drop_reply_after_accept=1)

    with pytest.raises(httpx.TransportError):
        supplier_simulator.call("order.direct.add", _direct("D-DROP"))
    code, data = _reply(
        supplier_simulator,
        supplier_simulator.call("order.get", {"customer_order_no": "D-DROP"}),
    )

    assert code == 0
    assert data["customer_order_no"] == "D-DROP"


def test_drop_reply_hang_times_client_out_but_stores_order(supplier_simulator):
    supplier_simulator.faults(
        drop_reply_after_accept=1, drop_mode="hang", hang_seconds=2
    )

    with pytest.raises(httpx.ReadTimeout):
        supplier_simulator.call("order.direct.add", _direct("D-HANG"), timeout=0.3)

    assert supplier_simulator.report()["orders"]["D-HANG"]["placements"] == 1


def test_http_500_before_store_creates_no_order(supplier_simulator):
    supplier_simulator.faults(http_500_before_store=1)

    first = supplier_simulator.call("order.direct.add", _direct("D-500B"))
    query = supplier_simulator.call("order.get", {"customer_order_no": "D-500B"})

    assert first.status_code == 500
    assert _reply(supplier_simulator, query)[0] == protocol.ORDER_NOT_FOUND
    assert supplier_simulator.report()["unplaced"] == {"D-500B": 1}


def test_http_500_after_store_creates_the_order(supplier_simulator):
    supplier_simulator.faults(http_500_after_store=1)

    first = supplier_simulator.call("order.direct.add", _direct("D-500A"))
    again = supplier_simulator.call("order.direct.add", _direct("D-500A"))

    assert first.status_code == 500
    assert _reply(supplier_simulator, again)[0] == 0
    assert supplier_simulator.report()["totals"]["orders_created"] == 1


def test_rate_limit_answers_429_with_retry_after_for_the_next_n(supplier_simulator):
    supplier_simulator.faults(rate_limit=2, retry_after=7)

    replies = [supplier_simulator.call("account.balance") for _ in range(3)]

    assert [r.status_code for r in replies] == [429, 429, 200]
    assert replies[0].headers["Retry-After"] == "7"
    assert _reply(supplier_simulator, replies[0])[0] == protocol.RATE_LIMITED


def test_busy_answers_5000_without_storing(supplier_simulator):
    supplier_simulator.faults(busy=1)

    response = supplier_simulator.call("order.direct.add", _direct("D-BUSY"))

    assert _reply(supplier_simulator, response)[0] == protocol.SYSTEM_BUSY
    assert supplier_simulator.report()["orders"] == {}


def test_malformed_reply_is_not_json_but_order_is_stored(supplier_simulator):
    supplier_simulator.faults(malformed_reply=1)

    response = supplier_simulator.call("order.direct.add", _direct("D-MAL"))

    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert "D-MAL" in supplier_simulator.report()["orders"]


@pytest.mark.parametrize("fault", ["unsigned_reply", "bad_reply_signature"])
def test_reply_signature_fails_verification_when_tampered(supplier_simulator, fault):
    supplier_simulator.faults(**{fault: 1})

    tampered = supplier_simulator.call("account.balance").json()
    clean = supplier_simulator.call("account.balance").json()

    assert tampered["code"] == 0
    assert not protocol.verify(tampered, supplier_simulator.secret)
    assert protocol.verify(clean, supplier_simulator.secret)


def test_faults_scoped_by_product_id_spare_other_products(supplier_simulator):
    supplier_simulator.faults(busy=True, product_id="P-IQ-VIP-MONTH")

    other = supplier_simulator.call("order.direct.add", _direct("D-SCOPE-1"))
    scoped = supplier_simulator.call(
        "order.direct.add",
        _direct("D-SCOPE-2", product_id="P-IQ-VIP-MONTH", charge_account="13800138000"),
    )

    assert _reply(supplier_simulator, other)[0] == 0
    assert _reply(supplier_simulator, scoped)[0] == protocol.SYSTEM_BUSY


def test_faults_refused_with_400_when_unknown(supplier_simulator):
    response = httpx.post(
        f"{supplier_simulator.control_url}/faults", json={"explode": 1}
    )

    assert response.status_code == 400
    assert "explode" in response.json()["error"]


# -- settlement -----------------------------------------------------------------
def test_processing_seconds_keeps_order_pending_until_completed(supplier_simulator):
    supplier_simulator.faults(processing_seconds=60)
    supplier_simulator.call("order.direct.add", _direct("D-SLOW"))
    time.sleep(0.3)

    _, pending = _reply(
        supplier_simulator,
        supplier_simulator.call("order.get", {"customer_order_no": "D-SLOW"}),
    )
    supplier_simulator.complete("D-SLOW")

    assert pending["state"] in (protocol.UNTREATED, protocol.PROCESSING)
    assert _settled(supplier_simulator, "D-SLOW")["state"] == protocol.SUCCESS


def test_fail_next_fails_order_with_reason_and_refunds(supplier_simulator):
    supplier_simulator.faults(fail_next=1, fail_reason="账号已冻结")
    supplier_simulator.call("order.direct.add", _direct("D-FAIL"))
    supplier_simulator.call("order.direct.add", _direct("D-NEXT"))

    failed = _settled(supplier_simulator, "D-FAIL")

    assert (failed["state"], failed["fail_reason"]) == (protocol.FAILED, "账号已冻结")
    assert _settled(supplier_simulator, "D-NEXT")["state"] == protocol.SUCCESS
    report = supplier_simulator.report()
    assert report["balance"] == "9976.00"
    assert report["totals"]["spent"] == "24.00"


def test_terminal_state_never_changes(supplier_simulator):
    supplier_simulator.call("order.direct.add", _direct("D-TERM"))
    _settled(supplier_simulator, "D-TERM")

    supplier_simulator.complete("D-TERM", state="failed")

    assert _settled(supplier_simulator, "D-TERM")["state"] == protocol.SUCCESS


# -- callbacks ------------------------------------------------------------------
def test_callback_delivered_signed_when_order_settles(supplier_simulator, receiver):
    supplier_simulator.call("order.direct.add", _direct("D-CB", receiver.url))

    supplier_simulator.wait_for(lambda: receiver.received)

    callback = receiver.received[0]
    assert protocol.verify(callback, supplier_simulator.secret)
    assert set(callback) == {
        "order_id",
        "customer_order_no",
        "state",
        "fail_reason",
        "finished_at",
        "timestamp",
        "nonce",
        "sign",
    }
    assert (callback["customer_order_no"], callback["state"]) == (
        "D-CB",
        protocol.SUCCESS,
    )
    log = supplier_simulator.wait_for(supplier_simulator.callback_log)
    assert log[0]["answered_success"] is True
    assert (log[0]["attempt"], log[0]["http_status"]) == (1, 200)


def test_callback_retried_until_receiver_answers_success(supplier_simulator, receiver):
    receiver.answers = [(500, "oops"), (200, "fail"), (200, "success")]
    supplier_simulator.call("order.direct.add", _direct("D-RETRY", receiver.url))

    log = supplier_simulator.wait_for(
        lambda: (
            [e for e in supplier_simulator.callback_log() if e["answered_success"]]
            and supplier_simulator.callback_log()
        )
    )

    assert [(e["attempt"], e["http_status"], e["answered_success"]) for e in log] == [
        (1, 500, False),
        (2, 200, False),
        (3, 200, True),
    ]
    assert len({c["nonce"] for c in receiver.received}) == 3
    time.sleep(0.2)  # the schedule's next step (5 m x 0.001) would have passed
    assert len(receiver.received) == 3


def test_duplicate_callbacks_resend_the_same_body(supplier_simulator, receiver):
    supplier_simulator.faults(duplicate_callbacks=1)
    supplier_simulator.call("order.direct.add", _direct("D-DUP", receiver.url))

    supplier_simulator.wait_for(lambda: len(receiver.raw) >= 2)

    assert receiver.raw[0] == receiver.raw[1]
    assert [e["kind"] for e in supplier_simulator.callback_log()] == [
        "terminal",
        "duplicate",
    ]


def test_out_of_order_callbacks_send_stale_processing_after_terminal(
    supplier_simulator, receiver
):
    supplier_simulator.faults(out_of_order_callbacks=1, fail_next=1)
    supplier_simulator.call("order.direct.add", _direct("D-OOO", receiver.url))

    supplier_simulator.wait_for(lambda: len(receiver.received) >= 2)

    assert [c["state"] for c in receiver.received] == [
        protocol.FAILED,
        protocol.PROCESSING,
    ]
    assert all(protocol.verify(c, supplier_simulator.secret) for c in receiver.received)


def test_bad_callback_signature_is_followed_by_a_good_retry(
    supplier_simulator, receiver
):
    receiver.answers = [(400, "bad sign")]
    supplier_simulator.faults(bad_callback_signature=1)
    supplier_simulator.call("order.direct.add", _direct("D-BADSIG", receiver.url))

    supplier_simulator.wait_for(lambda: len(receiver.received) >= 2)

    assert not protocol.verify(receiver.received[0], supplier_simulator.secret)
    assert protocol.verify(receiver.received[1], supplier_simulator.secret)
    assert supplier_simulator.callback_log()[0]["bad_signature"] is True


def test_no_callback_sends_nothing(supplier_simulator, receiver):
    supplier_simulator.faults(no_callback=1)
    supplier_simulator.call("order.direct.add", _direct("D-SILENT", receiver.url))

    _settled(supplier_simulator, "D-SILENT")
    time.sleep(0.2)

    assert receiver.received == []
    assert supplier_simulator.callback_log() == []


# -- report, reset, command -------------------------------------------------------
def test_report_lists_orders_placements_callbacks_and_totals(
    supplier_simulator, receiver
):
    supplier_simulator.call("order.direct.add", _direct("R-1", receiver.url))
    supplier_simulator.call("order.direct.add", _direct("R-1", receiver.url))
    supplier_simulator.call(
        "order.card.add", _card("R-2", buy_num=2, notify_url=receiver.url)
    )
    supplier_simulator.wait_for(lambda: len(supplier_simulator.callback_log()) >= 2)

    report = supplier_simulator.report()

    assert set(report["orders"]["R-1"]) >= {
        "order_id",
        "product_id",
        "charge_account",
        "buy_num",
        "price",
        "state",
        "placements",
        "created_at",
        "finished_at",
    }
    assert report["orders"]["R-1"]["placements"] == 2
    assert report["orders"]["R-2"]["state"] == protocol.SUCCESS
    assert report["totals"] == {"orders_created": 2, "placements": 3, "spent": "64.00"}
    assert report["balance"] == "9936.00"
    assert {c["customer_order_no"] for c in report["callbacks"]} == {"R-1", "R-2"}
    assert set(report["callbacks"][0]) >= {
        "customer_order_no",
        "state",
        "attempt",
        "http_status",
        "answered_success",
    }


def test_reset_clears_orders_faults_and_restores_balance(supplier_simulator):
    supplier_simulator.faults(busy=5, balance="1.00")
    supplier_simulator.call("order.direct.add", _direct("X-1"))

    supplier_simulator.reset()

    report = supplier_simulator.report()
    assert (report["orders"], report["balance"], report["totals"]["placements"]) == (
        {},
        "10000.00",
        0,
    )
    assert httpx.get(f"{supplier_simulator.control_url}/faults").json()["rules"] == []
    assert (
        _reply(
            supplier_simulator,
            supplier_simulator.call("order.direct.add", _direct("X-1")),
        )[0]
        == 0
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_management_command_serves_health_and_stops_on_sigterm():
    port = _free_port()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
        [
            sys.executable,
            "manage.py",
            "supplier_simulator",
            "--port",
            str(port),
            "--time-scale",
            "0.001",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        health = httpx.get(f"http://127.0.0.1:{port}/_control/health", timeout=5)

        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert f"http://127.0.0.1:{port}" in banner
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert process.returncode == 0
