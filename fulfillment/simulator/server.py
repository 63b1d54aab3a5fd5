"""The simulator's HTTP face: `POST /api/{method}` speaks the protocol, `/_control/` steers it.

Every API request is verified the way a real supplier would (app, signature,
timestamp window, nonce, biz fields) before any fault or business rule runs,
so a fault never hides a client's signing bug. Replies are signed with the
app's secret; a reply to an unknown app_key cannot be, and carries `sign: ""`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from fulfillment.simulator.callbacks import DEFAULT_TIMEOUT_SECONDS, CallbackDispatcher
from fulfillment.simulator.faults import API_METHODS, PLACE_METHODS
from fulfillment.simulator.state import SimulatorState
from fulfillment.simulator.wire import DEFAULT_PROCESSING_SECONDS, ApiError
from fulfillment.suppliers import protocol

logger = logging.getLogger(__name__)

DEFAULT_APP_KEY = "kaquan-demo"
DEFAULT_SECRET = "demo-supplier-secret"  # noqa: S105 - the documented demo secret
DEFAULT_BALANCE = Decimal("10000.00")
MAX_BODY_BYTES = 1 << 20
NONCE_MAX = 64
JSON_TYPE = "application/json; charset=utf-8"
# What a gateway in front of a crashed supplier might return: cut-off JSON.
MALFORMED_BODY = b'{"code":0,"message":"ok","data":{"order_id":"SIM'


@dataclass(frozen=True)
class Reply:
    """What the handler writes; `drop` replaces the reply with a closed connection."""

    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: tuple[tuple[str, str], ...] = ()
    drop: str = ""  # "" | "close" | "hang"
    hang_seconds: float = 0.0


def _json(payload: Any, status: int = 200) -> Reply:
    return Reply(status, json.dumps(payload, ensure_ascii=False).encode())


class Simulator:
    """One simulated supplier: state, callback thread and HTTP server together."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8099,
        app_key: str = DEFAULT_APP_KEY,
        secret: str = DEFAULT_SECRET,
        time_scale: float = 1.0,
        balance: Decimal = DEFAULT_BALANCE,
        processing_seconds: float = DEFAULT_PROCESSING_SECONDS,
        callback_timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.host = host
        self.port = port
        self.app_key = app_key
        self.secret = secret
        self.state = SimulatorState(
            app_key=app_key,
            secret=secret,
            balance=balance,
            processing_seconds=processing_seconds,
        )
        self.dispatcher = CallbackDispatcher(
            time_scale=time_scale,
            record=self.state.callback_record,
            tick=self.advance,
            timeout=callback_timeout,
        )
        self._stop = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def control_url(self) -> str:
        return f"{self.base_url}/_control"

    def start(self) -> Simulator:
        """Bind (port 0 picks a free port), then serve and dispatch in daemon threads."""
        self._httpd = _Server((self.host, self.port), _Handler, self)
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="supplier-sim-http",
            daemon=True,
        )
        self._thread.start()
        self.dispatcher.start()
        logger.info("supplier simulator listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving, wake hanging handlers, stop the callback thread."""
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.dispatcher.stop()

    def wait(self, seconds: float) -> bool:
        """Sleep that ends early on stop(); True when stopping."""
        return self._stop.wait(seconds)

    def advance(self) -> None:
        """Settle due orders and queue the callbacks they owe."""
        for owed in self.state.advance():
            self.dispatcher.submit(owed)

    def reset(self) -> None:
        self.dispatcher.clear()
        self.state.reset()

    # -- the protocol ---------------------------------------------------------
    def handle_api(self, method: str, raw: bytes) -> Reply:
        """Verify a request (1004, 1001, 1002, 1003, 1101), then run it under the faults."""
        try:
            fields = json.loads(raw)
        except ValueError:
            fields = None
        if not isinstance(fields, dict):
            return self._envelope(
                protocol.INVALID_PARAMETER, "body must be a JSON object", {}, None
            )
        app = self.state.app_get(fields.get("app_key"))
        if app is None:
            return self._envelope(protocol.APP_DISABLED, "unknown app_key", {}, None)
        secret, enabled = app
        app_key = str(fields["app_key"])
        if not enabled:
            return self._envelope(protocol.APP_DISABLED, "app disabled", {}, secret)
        if not protocol.verify(fields, secret):
            return self._envelope(protocol.BAD_SIGNATURE, "bad signature", {}, secret)
        timestamp = fields.get("timestamp")
        if isinstance(timestamp, str) and timestamp.isdigit():
            timestamp = int(timestamp)
        if isinstance(timestamp, bool) or not isinstance(timestamp, int):
            return self._envelope(
                protocol.INVALID_PARAMETER, "timestamp must be unix seconds", {}, secret
            )
        if abs(time.time() - timestamp) > protocol.TIMESTAMP_WINDOW_SECONDS:
            return self._envelope(
                protocol.TIMESTAMP_OUT_OF_WINDOW, "timestamp out of window", {}, secret
            )
        nonce = fields.get("nonce")
        if not isinstance(nonce, str) or not 1 <= len(nonce) <= NONCE_MAX:
            return self._envelope(
                protocol.INVALID_PARAMETER, "nonce is required", {}, secret
            )
        if not self.state.nonce_use(app_key, nonce):
            return self._envelope(protocol.NONCE_REUSED, "nonce reused", {}, secret)
        biz = fields.get("biz") or {}
        if not isinstance(biz, dict):
            return self._envelope(
                protocol.INVALID_PARAMETER, "biz must be an object", {}, secret
            )
        if method not in API_METHODS:
            return self._envelope(
                protocol.INVALID_PARAMETER, f"unknown method {method[:40]}", {}, secret
            )
        return self._run(method, app_key, secret, biz)

    def _run(
        self, method: str, app_key: str, secret: str, biz: dict[str, Any]
    ) -> Reply:
        if method in PLACE_METHODS:
            self.state.placement_note(app_key, biz.get("customer_order_no"))
        settings = self.state.settings_get()
        latency_ms = settings.latency_ms + secrets.randbelow(
            settings.latency_jitter_ms + 1
        )
        if latency_ms:
            self.wait(latency_ms / 1000)

        def take(fault: str) -> bool:
            return self.state.fault_take(fault, method, biz)

        if take("rate_limit"):
            reply = self._envelope(
                protocol.RATE_LIMITED, "rate limited", {}, secret, status=429
            )
            retry_after = (("Retry-After", str(settings.retry_after)),)
            return Reply(reply.status, reply.body, headers=retry_after)
        if take("busy"):
            return self._envelope(protocol.SYSTEM_BUSY, "system busy", {}, secret)
        if take("http_500_before_store"):
            return Reply(500, b"Internal Server Error", content_type="text/plain")
        self.advance()  # a query sees an order settled the moment it is due
        try:
            data = self._dispatch(method, app_key, biz)
        except ApiError as exc:
            return self._envelope(exc.code, exc.message, {}, secret, take=take)
        if take("drop_reply_after_accept"):
            return Reply(0, drop=settings.drop_mode, hang_seconds=settings.hang_seconds)
        if take("http_500_after_store"):
            return Reply(500, b"Internal Server Error", content_type="text/plain")
        return self._envelope(protocol.OK, "ok", data, secret, take=take)

    def _dispatch(
        self, method: str, app_key: str, biz: dict[str, Any]
    ) -> dict[str, Any]:
        if method == "product.list":
            return self.state.product_list()
        if method == "account.balance":
            return self.state.balance_get()
        if method == "order.get":
            return self.state.order_get(app_key, biz)
        return self.state.place(app_key, method, biz)

    @staticmethod
    def _envelope(
        code: int,
        message: str,
        data: dict[str, Any],
        secret: str | None,
        *,
        status: int = 200,
        take: Callable[[str], bool] | None = None,
    ) -> Reply:
        """A signed `{code, message, data, sign}` reply, bent by the reply faults if any."""
        if take is not None and take("malformed_reply"):
            return Reply(200, MALFORMED_BODY)
        reply: dict[str, Any] = {"code": code, "message": message, "data": data}
        if take is not None and take("unsigned_reply"):
            return _json(reply, status)
        if secret is None:
            reply["sign"] = ""
        elif take is not None and take("bad_reply_signature"):
            reply["sign"] = protocol.sign(reply, secret + "-not-the-secret")
        else:
            reply["sign"] = protocol.sign(reply, secret)
        return _json(reply, status)

    # -- the control API ------------------------------------------------------
    def handle_control(self, verb: str, path: str, raw: bytes) -> Reply:
        """`/_control/{path}`; 400 with {"error"} on a bad payload, 404 on an unknown path."""
        if verb == "GET":
            if path == "health":
                return _json({"status": "ok"})
            if path == "report":
                self.advance()
                return _json(self.state.report())
            if path == "faults":
                return _json(self.state.faults_describe())
            if path == "callbacks":
                return _json({"callbacks": self.state.report()["callbacks"]})
            return _json({"error": "not found"}, 404)
        try:
            payload = json.loads(raw or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("body must be a JSON object")
            result = self._control_post(path, payload)
        except (ValueError, TypeError, ArithmeticError) as exc:
            return _json({"error": str(exc)}, 400)
        if result is None:
            return _json({"error": "not found"}, 404)
        return _json(result)

    def _control_post(
        self, path: str, payload: dict[str, Any]
    ) -> dict[str, Any] | None:
        if path == "faults":
            return self.state.faults_apply(payload)
        if path == "reset":
            self.reset()
            return {"status": "ok"}
        if path == "products":
            items = payload.get("products", [payload])
            return {"products": [self.state.product_upsert(item) for item in items]}
        if path == "accounts/invalid":
            accounts = payload.get("charge_accounts")
            if not isinstance(accounts, list) or not all(
                isinstance(a, str) for a in accounts
            ):
                raise ValueError("charge_accounts must be a list of text")
            invalid = self.state.accounts_mark(
                accounts, invalid=bool(payload.get("invalid", True))
            )
            return {"invalid_accounts": invalid}
        if path == "apps":
            return self.state.app_upsert(payload)
        if path == "orders/complete":
            order = self.state.order_complete(payload)
            self.advance()
            return order
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], handler: type[_Handler], simulator: Simulator
    ) -> None:
        self.simulator = simulator
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = (
        "HTTP/1.0"  # one request per connection: no idle threads left behind
    )
    server_version = "KaquanSupplierSimulator/1.0"

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def _route(self, verb: str) -> None:
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(_json({"error": "body too large"}, 413))
            return
        raw = self.rfile.read(length) if length > 0 else b""
        simulator = self.server.simulator
        if verb == "POST" and path.startswith("/api/"):
            reply = simulator.handle_api(path.removeprefix("/api/"), raw)
        elif path.startswith("/_control/"):
            reply = simulator.handle_control(verb, path.removeprefix("/_control/"), raw)
        else:
            reply = _json({"error": "not found"}, 404)
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        if reply.drop:
            # The order is stored; the client only ever sees a dead connection.
            if reply.drop == "hang":
                self.server.simulator.wait(reply.hang_seconds)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("supplier simulator: %s", format % args)
