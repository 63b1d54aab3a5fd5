"""Shared pieces for the supplier tests: an adapter on the simulator, a callback catcher."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from config.lib.http import json_clients_close
from fulfillment.suppliers.base import Exchange
from fulfillment.suppliers.generic import GenericSupplierClient

# Nothing listens there: the simulator's callbacks fail fast and are retried.
NOTIFY_URL = "http://127.0.0.1:9/suppliers/callback/sim/"


def order_no() -> str:
    return f"T{uuid.uuid4().hex[:16]}"


QQ = "123456789"


def direct_order(adapter, number=None, **overrides):
    kwargs = {
        "product_id": "P-TX-VIP-MONTH",
        "customer_order_no": number or order_no(),
        "charge_account": QQ,
        "buy_num": 1,
        "notify_url": NOTIFY_URL,
        **overrides,
    }
    return adapter.place_direct(**kwargs)


def card_order(adapter, number=None, buy_num=2):
    return adapter.place_card(
        product_id="C-YK-VIP-MONTH",
        customer_order_no=number or order_no(),
        buy_num=buy_num,
        notify_url=NOTIFY_URL,
    )


@pytest.fixture(autouse=True)
def _fresh_json_clients() -> Iterator[None]:
    """Each test gets its own pooled clients (simulators come and go per test)."""
    yield
    json_clients_close()


@pytest.fixture
def exchanges() -> list[Exchange]:
    return []


@pytest.fixture
def adapter(supplier_simulator, exchanges, settings) -> GenericSupplierClient:
    """The adapter under test, pointed at the simulator, recording every exchange."""
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True
    return GenericSupplierClient(
        base_url=supplier_simulator.base_url,
        app_key=supplier_simulator.app_key,
        secret=supplier_simulator.secret,
        record=exchanges.append,
        read_timeout=2.0,
    )


class _Catcher(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CatchHandler)
        self.bodies: list[bytes] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/suppliers/callback/sim/"

    def snapshot(self) -> list[bytes]:
        with self.lock:
            return list(self.bodies)


class _CatchHandler(BaseHTTPRequestHandler):
    server: _Catcher

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.bodies.append(body)
        reply = b"success"
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def callback_catcher() -> Iterator[_Catcher]:
    """A notify_url on loopback that keeps every callback body and answers `success`."""
    server = _Catcher()
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
