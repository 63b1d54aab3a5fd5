"""What the gateway stand-ins share: a threaded loopback HTTP server and a notifier.

A stand-in is an object with `handle(request) -> Reply`; `StandinServer` serves it
on 127.0.0.1 (port 0 picks a free port) in a daemon thread, as the supplier
simulator does, so tests talk to it over real HTTP. `Notifier` POSTs the
gateway's asynchronous notifies from its own thread, retrying until the shop
acknowledges, and keeps a log a test can read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

import httpx

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
# Seconds between notify attempts; real gateways stretch this over a day.
RETRY_DELAYS = (0.0, 0.2, 0.5, 1.0)


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query string
    target: str  # path and query string, as sent (WeChat signs it)
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def form(self) -> dict[str, str]:
        """Query string and url-encoded body together (Alipay accepts both)."""
        fields = dict(self.query)
        if self.body:
            fields.update(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))
        return fields


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def text(
        cls, text: str, status: int = 200, content_type: str = "text/plain"
    ) -> Reply:
        return cls(
            status, text.encode(), {"Content-Type": f"{content_type}; charset=utf-8"}
        )

    @classmethod
    def redirect(cls, location: str) -> Reply:
        return cls(302, b"", {"Location": location})


class Handles(Protocol):
    def handle(self, request: Request) -> Reply: ...


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], standin: Handles) -> None:
        self.standin = standin
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: no idle threads

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(Reply.text("body too large", 413))
            return
        parts = urlsplit(self.path)
        request = Request(
            method=method,
            path=parts.path,
            target=self.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        try:
            reply = self.server.standin.handle(request)
        except Exception:
            logger.exception("stand-in failed on %s %s", method, parts.path)
            reply = Reply.text("stand-in error", 500)
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("stand-in: %s", format % args)


class StandinServer:
    """Serve one stand-in on loopback in a daemon thread."""

    def __init__(self, standin: Handles, *, host: str = "127.0.0.1", port: int = 0):
        self._httpd = _Server((host, port), standin)
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="gateway-standin-http",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for a loop that never ran
            self._httpd.shutdown()
            self._thread.join(timeout=5)
        self._httpd.server_close()


@dataclass(frozen=True)
class Delivery:
    url: str
    status: int  # 0: no answer
    body: str
    acknowledged: bool


@dataclass
class Notifier:
    """POST notifies from a thread until `acknowledged(response)` says the shop took it."""

    acknowledged: Callable[[httpx.Response], bool]
    delays: tuple[float, ...] = RETRY_DELAYS
    log: list[Delivery] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def send(self, url: str, **request: object) -> None:
        """Deliver in the background (`request`: httpx.post keyword arguments)."""
        thread = threading.Thread(
            target=self._deliver, args=(url, request), daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def _deliver(self, url: str, request: dict[str, object]) -> None:
        for delay in self.delays:
            time.sleep(delay)
            try:
                response = httpx.post(url, timeout=10, **request)  # type: ignore[arg-type]
            except Exception:  # unreachable, refused, blocked: the gateway retries
                self._record(Delivery(url, 0, "", False))
                continue
            ok = self.acknowledged(response)
            self._record(Delivery(url, response.status_code, response.text, ok))
            if ok:
                return

    def _record(self, delivery: Delivery) -> None:
        with self._lock:
            self.log.append(delivery)

    def wait(self, timeout: float = 10.0) -> None:
        """Until every notify sent so far is acknowledged or out of retries."""
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
