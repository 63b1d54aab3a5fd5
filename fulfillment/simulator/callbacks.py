"""Signed order callbacks, delivered by one background thread on the protocol's schedule.

A terminal order owes one callback to its `notify_url`. Anything but HTTP 200
with body `success` is retried after 15 s, 1 m, 5 m, 15 m, 1 h, 2 h and 6 h,
each multiplied by `time_scale` so tests can run the whole schedule in
milliseconds. Each attempt carries a fresh `timestamp` and `nonce` (a receiver
checking the timestamp window would otherwise refuse a 6-hour-late retry);
a `duplicate` resends the first attempt's exact bytes.

The same thread also ticks the simulator (`tick`), so orders settle and owe
their callbacks even when nobody queries them.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from fulfillment.suppliers import protocol

logger = logging.getLogger(__name__)

RETRY_DELAYS_SECONDS = (15, 60, 300, 900, 3600, 7200, 21600)
TICK_SECONDS = 0.01
DEFAULT_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class CallbackOrder:
    """What one order's callback says, and how the faults taken at creation bend it."""

    app_key: str
    secret: str
    notify_url: str
    order_id: str
    customer_order_no: str
    state: str
    fail_reason: str
    finished_at: str
    duplicate: bool = False
    out_of_order: bool = False
    bad_signature: bool = False


@dataclass(frozen=True)
class _Job:
    order: CallbackOrder
    attempt: int
    kind: str  # "terminal" | "duplicate" | "stale" (the out-of-order processing one)
    generation: int
    body: bytes | None = None  # resend exactly these bytes


def _body(order: CallbackOrder, *, stale: bool, bad_signature: bool) -> bytes:
    fields: dict[str, Any] = {
        "order_id": order.order_id,
        "customer_order_no": order.customer_order_no,
        "state": protocol.PROCESSING if stale else order.state,
        "fail_reason": "" if stale else order.fail_reason,
        "finished_at": "" if stale else order.finished_at,
        "timestamp": int(time.time()),
        "nonce": secrets.token_hex(16),
    }
    # A bad signature is a real HMAC under the wrong key: it looks plausible.
    key = order.secret + "-not-the-secret" if bad_signature else order.secret
    fields["sign"] = protocol.sign(fields, key)
    return json.dumps(fields, ensure_ascii=False).encode()


class CallbackDispatcher:
    """A timed queue of callback attempts worked off by one daemon thread."""

    def __init__(
        self,
        *,
        time_scale: float,
        record: Callable[[dict[str, Any]], None],
        tick: Callable[[], None] | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.time_scale = time_scale
        self.timeout = timeout
        self._record = record
        self._tick = tick
        self._heap: list[tuple[float, int, _Job]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._generation = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="supplier-sim-callbacks", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 1)

    def clear(self) -> None:
        """Drop every pending attempt (reset); attempts in flight are not rescheduled."""
        with self._cond:
            self._generation += 1
            self._heap.clear()

    def submit(self, order: CallbackOrder) -> None:
        """Owe `order`'s callback: the first attempt goes out at once."""
        with self._cond:
            job = _Job(order, 1, "terminal", self._generation)
        self._push(job, delay=0.0)

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def _push(self, job: _Job, *, delay: float) -> None:
        with self._cond:
            if job.generation != self._generation:
                return
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._seq), job))
            self._cond.notify_all()

    def _next_due(self) -> _Job | None:
        with self._cond:
            now = time.monotonic()
            if self._heap and self._heap[0][0] <= now:
                return heapq.heappop(self._heap)[2]
            wait = TICK_SECONDS
            if self._heap:
                wait = min(wait, self._heap[0][0] - now)
            self._cond.wait(wait)
            return None

    def _run(self) -> None:
        # The simulator stands in for an external supplier, so it calls httpx
        # directly rather than through config.lib.http (which guards *our*
        # outbound calls and may refuse loopback targets).
        with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
            while not self._stop.is_set():
                try:
                    if self._tick is not None:
                        self._tick()
                    job = self._next_due()
                    if job is not None:
                        self._deliver(client, job)
                except Exception:
                    # One broken attempt must not stop every later callback.
                    logger.exception("supplier simulator: callback loop error")

    def _deliver(self, client: httpx.Client, job: _Job) -> None:
        order = job.order
        bad_signature = (
            job.kind == "terminal" and job.attempt == 1 and order.bad_signature
        )
        body = job.body or _body(
            order, stale=job.kind == "stale", bad_signature=bad_signature
        )
        status: int | None = None
        error = ""
        answered_success = False
        try:
            reply = client.post(
                order.notify_url,
                content=body,
                headers={"Content-Type": "application/json"},
            )
            status = reply.status_code
            answered_success = status == 200 and reply.text.strip() == "success"
        except Exception as exc:  # connection refused, timeout, blocked socket...
            error = type(exc).__name__
        self._record(
            {
                "customer_order_no": order.customer_order_no,
                "order_id": order.order_id,
                "state": protocol.PROCESSING if job.kind == "stale" else order.state,
                "attempt": job.attempt,
                "kind": job.kind,
                "http_status": status,
                "answered_success": answered_success,
                "bad_signature": bad_signature,
                "error": error,
                "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            }
        )
        logger.info(
            "supplier simulator: callback %s attempt %d (%s) -> %s",
            order.customer_order_no,
            job.attempt,
            job.kind,
            status or error,
        )
        if job.kind != "terminal":
            return
        if job.attempt == 1:
            if order.duplicate:
                self._push(_Job(order, 1, "duplicate", job.generation, body), delay=0.0)
            if order.out_of_order:
                self._push(_Job(order, 1, "stale", job.generation), delay=0.0)
        if not answered_success and job.attempt <= len(RETRY_DELAYS_SECONDS):
            delay = RETRY_DELAYS_SECONDS[job.attempt - 1] * self.time_scale
            retry = _Job(order, job.attempt + 1, "terminal", job.generation)
            self._push(retry, delay=delay)
