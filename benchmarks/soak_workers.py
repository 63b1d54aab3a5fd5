"""soak.py's claim workers: processes that place and pay orders on an open-loop (or,
for the probe, closed-loop) schedule, and the parent that gathers their windows."""

from __future__ import annotations

import multiprocessing as mp
import queue
import secrets
import time
from collections import Counter
from typing import Any

import benchlib
from soak_setup import SKU

NOTIFY_URL = "http://127.0.0.1/payments/notify/sandbox/"


def claim_worker(
    env: dict[str, str],
    spec: dict[str, Any],
    results: Any,
) -> None:
    """Place and pay orders for 1 code; report each window's timings to the parent.

    Open loop (spec["rate"] > 0): arrival k of the global schedule is due at
    t0 + k / rate and this process takes k = index, index + P, ... Closed loop
    (rate 0, the probe): back to back until the end.
    """
    benchlib.django_setup(env)
    from django.db import connection

    from accounts.models import User
    from orders.gateways import sandbox
    from orders.models import PaymentNotify, SandboxTrade
    from orders.services import order_place, payment_notify_handle, payment_start

    users = list(User.objects.filter(id__in=spec["user_ids"]).order_by("id"))
    connection.ensure_connection()
    t0, seconds, window = spec["t0"], spec["seconds"], spec["window"]
    rate, index, step = spec["rate"], spec["index"], spec["processes"]
    records: list[tuple[float, float, float, float]] = []
    errors: Counter[str] = Counter()
    flushed = 0  # windows already sent
    k, n = index, 0
    while True:
        now = time.monotonic()
        due = t0 + k / rate if rate else max(now, t0)
        if due >= t0 + seconds:
            break
        if due > now:
            time.sleep(due - now)
        start = time.monotonic()
        try:
            order = order_place(
                user=users[n % len(users)],
                sku_code=SKU,
                quantity=1,
                client_token=secrets.token_urlsafe(16),
                ip_address="127.0.0.1",
            )
            claimed = time.monotonic()
            payment_start(order=order, notify_url=NOTIFY_URL, return_url="/")
            trade_no = (
                SandboxTrade.objects.filter(out_trade_no=order.number)
                .values_list("trade_no", flat=True)
                .first()
            )
            fields = sandbox.notify_fields(
                out_trade_no=order.number,
                trade_no=trade_no or "",
                amount=order.total_amount,
                status=sandbox.TRADE_SUCCESS,
            )
            result = payment_notify_handle(
                gateway_name="sandbox", fields=fields, remote_addr="127.0.0.1"
            )
            if result.outcome != PaymentNotify.Outcome.PAID:
                errors[f"notify outcome {result.outcome}"] += 1
            else:
                done = time.monotonic()
                records.append((done - t0, claimed - start, done - start, start - due))
        except Exception as exc:  # every failure counts against the run
            errors[type(exc).__name__] += 1
        k += step
        n += 1
        # The last window is only sent at the end: it takes the late completions.
        current = min(int((time.monotonic() - t0) // window), spec["windows"] - 1)
        if current > flushed:
            flushed = _flush(results, index, records, flushed, current, window)
    _flush(results, index, records, flushed, spec["windows"], window, final=True)
    results.put(("done", index, dict(errors)))


def _flush(
    results: Any,
    index: int,
    records: list[tuple[float, float, float, float]],
    first: int,
    upto: int,
    window: float,
    *,
    final: bool = False,
) -> int:
    """Send windows first..upto-1; in the final flush the last one takes the rest.

    Records are in completion order, so each window's records are a prefix.
    """
    for w in range(first, upto):
        rest = final and w == upto - 1
        mine = [r for r in records if rest or r[0] < (w + 1) * window]
        del records[: len(mine)]
        results.put(("window", index, w, mine))
    return upto


def run_workers(
    env: dict[str, str],
    *,
    rate: float,
    seconds: float,
    processes: int,
    user_ids: list[int],
    window: float,
    on_window: Any = None,
) -> tuple[dict[int, list[Any]], Counter[str], list[int]]:
    """Start the workers, call on_window(w) at each boundary, collect the records."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    windows = max(1, int(-(-seconds // window)))
    t0 = time.monotonic() + 5.0  # spawn + django.setup fit well inside
    per = len(user_ids) // processes
    procs = []
    for i in range(processes):
        spec = {
            "t0": t0,
            "seconds": seconds,
            "window": window,
            "windows": windows,
            "rate": rate,
            "index": i,
            "processes": processes,
            "user_ids": user_ids[i * per : (i + 1) * per],
        }
        proc = ctx.Process(target=claim_worker, args=(env, spec, results))
        proc.start()
        procs.append(proc)
    if on_window is not None:
        on_window.worker_pids = [p.pid for p in procs]
    by_window: dict[int, list[Any]] = {w: [] for w in range(windows)}
    errors: Counter[str] = Counter()
    done = 0

    def drain(block_until: float) -> None:
        nonlocal done
        while done < processes:
            try:
                item = results.get(timeout=max(0.01, block_until - time.monotonic()))
            except queue.Empty:
                return
            if item[0] == "window":
                by_window[item[2]].extend(item[3])
            else:
                done += 1
                errors.update(item[2])

    for w in range(windows):
        boundary = t0 + min(seconds, (w + 1) * window)
        drain(boundary)
        if on_window is not None:
            on_window(w)
    drain(time.monotonic() + 120)  # the orders still in flight at the end
    for proc in procs:
        proc.join(timeout=30)
    exit_codes = [p.exitcode if p.exitcode is not None else -1 for p in procs]
    if done < processes:
        errors["worker did not report"] += processes - done
    return by_window, errors, exit_codes
