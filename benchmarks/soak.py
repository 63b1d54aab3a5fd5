"""A soak: the real claim path at a steady rate on a pool of 1,000,000 codes.

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--codes 1000000] [--rate N]
        [--processes 4] [--window 30] [--json PATH]

1. Recreate kaquan_bench_soak, migrate, and load --codes available codes for one
   SKU: worker processes seal them with the app's vault (fulfillment.vault.seal,
   as card_codes_import does) and this process COPYs them in; then VACUUM ANALYZE.
2. Check the per-table autovacuum settings of the card-code table (the queue-table
   lesson of performance-notes.md): scale factor 0, a fixed threshold, no cost
   delay, index cleanup on. Missing ones fail the run. When the server itself runs
   with autovacuum = off (this machine's CI config does), the per-table settings
   are inert: the benchmark then plays the autovacuum daemon for this table (every
   autovacuum_naptime, VACUUM when n_dead_tup passes the table's own threshold,
   ANALYZE too when its analyze threshold is passed), says so in the report, and
   with --no-emulate-autovacuum fails instead.
3. Without --rate, measure the closed-loop maximum for --probe-seconds with the
   same processes and offer --load (60 %) of it: comfortably below saturation,
   so any decay shows up as lost throughput or growing latency, not as noise.
4. --processes processes run the app's services in-process (no HTTP): order_place
   for 1 code (the claim: user lock, order, line, SKIP LOCKED reserve), then
   payment_start and a signed sandbox notify through payment_notify_handle (the
   code is sold and the line delivered exactly as in production). Arrivals are
   open-loop at --rate orders/s in total, from one global schedule; a late
   start is recorded as lag and never skipped.
5. Every --window seconds: completed orders/s, claim (order_place) p50/p99, the
   card-code table's n_dead_tup and vacuum count, the claim index size,
   EXPLAIN (ANALYZE, BUFFERS) of the app's own claim query, the machine's CPU
   busy share and how much of it was ours (workers + PostgreSQL backends of the
   benchmark database), and our CPU ms per order (steady under others' load).

Verdict ("ok"), all must hold:
- flat: every window after the first (warm-up) completes within +/-10 % of the
  offered rate, AND the claim p99 of the last third of the measured period
  (after the first window) is at most 1.5x the p99 of its first third;
- the autovacuum settings of step 2 are present (and autovacuum runs, or is
  emulated);
- the DB checks: orders paid == payments == lines delivered == codes sold ==
  orders the workers completed; every sold code on its own delivered line; no
  code or order left reserved or pending; sold codes decrypt (a sample) to their
  fingerprint; no exception in any worker (the in-process stand-in for "no 5xx").
Exit status 1 when not ok (the JSON is written first).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import multiprocessing as mp
import os
import queue
import re
import secrets
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import benchlib
import psycopg2
from claim_plan import captured_sql
from claim_plan import explain as explain_rolled_back

DB_NAME = "kaquan_bench_soak"
SKU = "SOAK-1"
PRICE = Decimal("30.00")
CACHE_PREFIX = "kaquan-bench-soak"
SEAL_CHUNK = 20_000
USERS_PER_PROCESS = 250
PROBE_WARMUP = 5.0  # seconds of the probe not counted
NOTIFY_URL = "http://127.0.0.1/payments/notify/sandbox/"
BUFFERS_RE = re.compile(r"Buffers: shared(?: hit=(\d+))?(?: read=(\d+))?")
TOLERANCE = 0.10  # per-window throughput vs the offered rate
P99_GROWTH = 1.5  # last third vs first third
MAX_THRESHOLD = 100_000  # a "fixed threshold" above this is no eager vacuum


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--codes", type=int, default=1_000_000)
    p.add_argument("--rate", type=float, default=0.0, help="orders/s; 0: measure")
    p.add_argument("--processes", type=int, default=4)
    p.add_argument("--window", type=float, default=30.0, help="seconds per window")
    p.add_argument("--probe-seconds", type=float, default=20.0)
    p.add_argument("--load", type=float, default=0.6, help="share of the probed max")
    p.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/11",
        help="the benchmarks' Redis db (email tasks queue there, purged); empty: eager",
    )
    p.add_argument(
        "--no-emulate-autovacuum",
        action="store_true",
        help="fail when the server's autovacuum is off instead of playing it",
    )
    p.add_argument("--json", type=Path, default=None, help="write the report here")
    return p.parse_args()


# --- setup ------------------------------------------------------------------------


def _seal_init(env: dict[str, str]) -> None:
    benchlib.django_setup(env)


def _seal_chunk(span: tuple[int, int, int, int, str]) -> str:
    """COPY text for codes start..end: sealed by the app's vault, like an import."""
    from fulfillment import vault

    start, end, sku_id, batch_id, now = span
    out = io.StringIO()
    for i in range(start, end):
        sealed = vault.seal(f"SK{i:08d}{secrets.token_hex(6).upper()}")
        out.write(
            f"{sku_id}\t{batch_id}\t{sealed.ciphertext}\t{sealed.key_id}\t"
            f"{sealed.fingerprint}\t{sealed.hint}\tavailable\t{now}\n"
        )
    return out.getvalue()


def load_pool(env: dict[str, str], *, codes: int) -> dict[str, Any]:
    """The SKU, its batch of `codes` sealed available codes, and the shoppers."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import connection

    from fulfillment.models import CardCode, CodeBatch

    sku = benchlib.create_skus([SKU], platform_slug="soak", price=PRICE)[0]
    batch = CodeBatch.objects.create(sku=sku, note="soak")
    now = dt.datetime.now(tz=dt.UTC).isoformat()
    spans = [
        (s, min(codes, s + SEAL_CHUNK), sku.id, batch.id, now)
        for s in range(0, codes, SEAL_CHUNK)
    ]
    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")
    with (
        ctx.Pool(os.cpu_count() or 2, _seal_init, (env,)) as pool,
        connection.cursor() as cur,
    ):
        for text in pool.imap(_seal_chunk, spans):
            cur.cursor.copy_from(
                io.StringIO(text),
                CardCode._meta.db_table,
                columns=benchlib.CARDCODE_COPY_COLUMNS,
            )
    load_s = time.perf_counter() - t0
    CodeBatch.objects.filter(id=batch.id).update(imported_count=codes)
    with connection.cursor() as cur:
        t1 = time.perf_counter()
        cur.execute(f"VACUUM ANALYZE {CardCode._meta.db_table}")
        vacuum_s = time.perf_counter() - t1
    password = make_password(None)
    user_model = get_user_model()
    user_model.objects.bulk_create(
        user_model(username=f"soak{i}", email=f"soak{i}@example.com", password=password)
        for i in range(USERS_PER_PROCESS * 16)
    )
    return {
        "sku_id": sku.id,
        "codes": codes,
        "seal_and_copy_s": round(load_s, 1),
        "codes_per_s": round(codes / load_s),
        "vacuum_analyze_s": round(vacuum_s, 1),
    }


def autovacuum_settings() -> dict[str, Any]:
    """The card-code table's reloptions and the server switches they depend on."""
    from django.db import connection

    from fulfillment.models import CardCode

    with connection.cursor() as cur:
        cur.execute(
            "SELECT reloptions FROM pg_class WHERE oid = %s::regclass",
            [CardCode._meta.db_table],
        )
        options = dict(o.split("=", 1) for o in (cur.fetchone()[0] or []))
        cur.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('autovacuum', "
            "'track_counts', 'autovacuum_naptime', 'autovacuum_vacuum_threshold', "
            "'autovacuum_vacuum_scale_factor', 'autovacuum_analyze_threshold', "
            "'autovacuum_analyze_scale_factor', 'vacuum_cost_delay')"
        )
        server = dict(cur.fetchall())
    problems = []
    if options.get("autovacuum_vacuum_scale_factor") not in ("0", "0.0"):
        problems.append("autovacuum_vacuum_scale_factor is not 0")
    threshold = options.get("autovacuum_vacuum_threshold", "")
    if not threshold.isdigit() or int(threshold) > MAX_THRESHOLD:
        problems.append(
            f"autovacuum_vacuum_threshold is not a fixed <= {MAX_THRESHOLD}"
        )
    if options.get("autovacuum_vacuum_cost_delay") not in ("0", "0.0"):
        problems.append("autovacuum_vacuum_cost_delay is not 0")
    if options.get("vacuum_index_cleanup", "").lower() not in ("on", "true"):
        problems.append("vacuum_index_cleanup is not on")
    if server["track_counts"] != "on":
        problems.append("track_counts is off (autovacuum cannot see dead rows)")
    return {"reloptions": options, "server": server, "problems": problems}


class VacuumDaemon(threading.Thread):
    """Autovacuum's decision for one table, for a server that runs with autovacuum off.

    Every naptime: VACUUM when n_dead_tup > threshold + scale_factor * reltuples,
    with ANALYZE when n_mod_since_analyze passes the analyze threshold, the table's
    reloptions first and the server's settings otherwise (PostgreSQL's own rule).
    A plain VACUUM honours vacuum_index_cleanup; manual vacuum has no cost delay.
    """

    def __init__(self, *, table: str, settings: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        opts, server = settings["reloptions"], settings["server"]

        def pick(name: str) -> float:
            return float(opts[name] if name in opts else server[name])

        self.table = table
        self.naptime = float(server["autovacuum_naptime"])
        self.vacuum = (
            pick("autovacuum_vacuum_threshold"),
            pick("autovacuum_vacuum_scale_factor"),
        )
        self.analyze = (
            pick("autovacuum_analyze_threshold"),
            pick("autovacuum_analyze_scale_factor"),
        )
        self.stop = threading.Event()
        self.runs: list[dict[str, Any]] = []

    def run(self) -> None:
        conn = psycopg2.connect(benchlib.pg_dsn(DB_NAME))
        conn.autocommit = True
        with conn.cursor() as cur:
            while not self.stop.wait(self.naptime):
                cur.execute(
                    "SELECT n_dead_tup, n_mod_since_analyze, c.reltuples "
                    "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
                    "WHERE s.relname = %s",
                    [self.table],
                )
                dead, modified, tuples = cur.fetchone()
                if dead <= self.vacuum[0] + self.vacuum[1] * tuples:
                    continue
                analyze = modified > self.analyze[0] + self.analyze[1] * tuples
                t0 = time.perf_counter()
                cur.execute(f"VACUUM {'(ANALYZE) ' if analyze else ''}{self.table}")
                self.runs.append(
                    {
                        "at": dt.datetime.now(tz=dt.UTC).isoformat(timespec="seconds"),
                        "n_dead_tup": dead,
                        "analyze": analyze,
                        "seconds": round(time.perf_counter() - t0, 2),
                    }
                )
        conn.close()


# --- the claim workers --------------------------------------------------------------


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


# --- per-window DB figures -----------------------------------------------------------


class Sampler:
    """Table statistics, CPU shares and the claim plan, taken at each window boundary."""

    def __init__(self, sku_id: int) -> None:
        self.sku_id = sku_id
        self.samples: list[dict[str, Any]] = []
        self.worker_pids: list[int] = []  # set by run_workers
        self.vacuums_start = self._stats()["vacuums"]
        self.cpu0 = benchlib.CpuMeter._read()
        self.ours0 = self._our_cpu()

    def _our_cpu(self) -> dict[int, float]:
        pids = [*self.worker_pids, *benchlib.pg_backends(DB_NAME)]
        return {
            pid: cpu
            for pid in pids
            if (cpu := benchlib.proc_cpu_seconds(pid)) is not None
        }

    @staticmethod
    def _stats() -> dict[str, Any]:
        from django.db import connection

        from fulfillment.models import CardCode

        with connection.cursor() as cur:
            cur.execute(
                "SELECT n_live_tup, n_dead_tup, autovacuum_count + vacuum_count, "
                "greatest(last_autovacuum, last_vacuum), "
                "pg_relation_size('cardcode_claim_idx') / 1024, "
                "pg_relation_size(relid) / 1048576 "
                "FROM pg_stat_user_tables WHERE relname = %s",
                [CardCode._meta.db_table],
            )
            names = ("n_live_tup", "n_dead_tup", "vacuums", "last_vacuum")
            return dict(
                zip((*names, "claim_idx_kb", "table_mb"), cur.fetchone(), strict=True)
            )

    def __call__(self, w: int) -> None:
        from django.utils import timezone

        from fulfillment.locks import card_codes_claimable_lock_for_update

        cpu1, ours1 = benchlib.CpuMeter._read(), self._our_cpu()
        total = (cpu1[0] - self.cpu0[0]) or 1  # jiffies over all CPUs
        busy = 1 - (cpu1[1] - self.cpu0[1]) / total
        ours_s = sum(c - self.ours0.get(pid, 0.0) for pid, c in ours1.items())
        ours = ours_s * benchlib.CLK_TCK / total
        steal = (cpu1[2] - self.cpu0[2]) / total
        self.cpu0, self.ours0 = cpu1, ours1
        stats = self._stats()
        now = timezone.now()
        claim = captured_sql(
            lambda: card_codes_claimable_lock_for_update(
                sku_id=self.sku_id, quantity=1, now=now
            )
        )[0]
        plan, exec_ms = explain_rolled_back(*claim)
        found = BUFFERS_RE.search(plan)
        hit, read = found.groups() if found else (0, 0)
        last = stats.pop("last_vacuum")
        self.samples.append(
            {
                "window": w,
                **stats,
                "vacuums": stats["vacuums"] - self.vacuums_start,
                "last_vacuum": last.isoformat(timespec="seconds") if last else None,
                "claim_explain_ms": exec_ms,
                "claim_buffers": int(hit or 0) + int(read or 0),
                "cpu_busy": round(busy, 3),
                "cpu_ours": round(ours, 3),
                "cpu_others": round(max(0.0, busy - ours), 3),
                "cpu_steal": round(steal, 3),
                "our_cpu_s": round(ours_s, 2),
            }
        )
        x = self.samples[-1]
        print(
            f"  window {w} ends: n_dead_tup {x['n_dead_tup']:,}, vacuums {x['vacuums']} "
            f"(last {x['last_vacuum']}), claim plan {x['claim_buffers']} buffers "
            f"{exec_ms:.3f} ms, CPU busy {busy:.0%} (ours {ours:.0%})",
            flush=True,
        )


# --- the checks ---------------------------------------------------------------------


def db_checks(*, completed: int, initial: int, sample: int = 200) -> dict[str, Any]:
    """What was sold, counted in the database, against what the workers completed."""
    from django.db.models import Count, Q

    from fulfillment import vault
    from fulfillment.models import CardCode
    from orders.models import Order, OrderLine, Payment

    def by_status(model: Any) -> dict[str, int]:
        rows = model.objects.values("status").annotate(n=Count("id"))
        return {r["status"]: r["n"] for r in rows}

    orders, lines, codes = by_status(Order), by_status(OrderLine), by_status(CardCode)
    sold = CardCode.objects.filter(status=CardCode.Status.SOLD)
    sold_lines = sold.values("order_line_id").distinct().count()
    lines_ok = (
        OrderLine.objects.filter(status=OrderLine.Status.DELIVERED)
        .annotate(n=Count("codes", filter=Q(codes__status=CardCode.Status.SOLD)))
        .exclude(n=1)
        .count()
    )
    undecryptable = 0
    for ciphertext, key_id, fp in sold.values_list(
        "ciphertext", "key_id", "fingerprint"
    )[:sample]:
        try:
            plaintext = vault.open_sealed(ciphertext=ciphertext, key_id=key_id)
        except vault.VaultError:
            plaintext = ""
        undecryptable += vault.fingerprint(plaintext) != fp  # never printed
    payments = Payment.objects.count()
    n_sold = codes.get("sold", 0)
    figures = {
        "completed_by_workers": completed,
        "payments": payments,
        "orders_by_status": orders,
        "lines_by_status": lines,
        "codes_by_status": codes,
        "sold_codes_distinct_lines": sold_lines,
        "delivered_lines_without_exactly_one_code": lines_ok,
        "sold_codes_checked_decrypt": min(sample, n_sold),
        "sold_codes_not_decrypting": undecryptable,
    }
    delivered = orders.get("delivered", 0)
    problems = []
    if not completed == payments == delivered == lines.get("delivered", 0) == n_sold:
        problems.append(
            "completed, payments, orders and lines delivered, codes sold differ"
        )
    if sum(orders.values()) != delivered:
        problems.append("orders in a state other than delivered")
    if sold_lines != n_sold or lines_ok:
        problems.append("a code sold twice or a line without its one code")
    if codes.get("reserved", 0):
        problems.append("codes left reserved")
    if codes.get("available", 0) != initial - n_sold:
        problems.append("available codes do not add up")
    if undecryptable:
        problems.append("sold codes that do not decrypt to their fingerprint")
    figures["problems"] = problems
    return figures


def window_rows(
    by_window: dict[int, list[Any]], *, seconds: float, window: float
) -> list[dict[str, Any]]:
    rows = []
    for w, recs in sorted(by_window.items()):
        length = min(window, seconds - w * window)
        claim = [r[1] * 1000 for r in recs]
        rows.append(
            {
                "window": w,
                "seconds": length,
                "completed": len(recs),
                "orders_per_s": len(recs) / length,
                "claim_p50_ms": benchlib.percentile(claim, 50),
                "claim_p99_ms": benchlib.percentile(claim, 99),
                "order_p99_ms": benchlib.percentile([r[2] * 1000 for r in recs], 99),
                "max_lag_ms": max((r[3] * 1000 for r in recs), default=0.0),
            }
        )
    return rows


def flatness(
    rows: list[dict[str, Any]],
    by_window: dict[int, list[Any]],
    *,
    rate: float,
    seconds: float,
    window: float,
) -> dict[str, Any]:
    off = [
        r["window"]
        for r in rows[1:]
        if abs(r["orders_per_s"] - rate) > TOLERANCE * rate
    ]
    start = min(window, seconds)  # the first window is warm-up
    third = (seconds - start) / 3
    recs = [r for w, rs in by_window.items() if w > 0 for r in rs]
    first = [r[1] for r in recs if r[0] < start + third]
    last = [r[1] for r in recs if r[0] >= start + 2 * third]
    p99_first = benchlib.percentile(first, 99) * 1000
    p99_last = benchlib.percentile(last, 99) * 1000
    p99_ok = bool(first and last) and p99_last <= P99_GROWTH * p99_first
    return {
        "windows_off_rate": off,
        "claim_p99_first_third_ms": p99_first,
        "claim_p99_last_third_ms": p99_last,
        "p99_growth": p99_last / p99_first if first and last else None,
        "claims_in_thirds": [len(first), len(last)],  # p99 of a few hundred is noisy
        "ok": not off and p99_ok and len(rows) > 1,
    }


# --- main ---------------------------------------------------------------------------


def redis_clean(url: str) -> int:
    """Drop our Celery queue, kombu bindings and cache keys; returns tasks dropped."""
    import redis

    client = redis.Redis.from_url(url)
    queued: Any = client.llen("celery")  # the sync client: an int
    tasks = int(queued)
    keys = [b"celery", *client.scan_iter(match="_kombu.binding*")]
    keys += list(client.scan_iter(match=f"{CACHE_PREFIX}*"))
    client.delete(*keys)
    return tasks


def probe(
    env: dict[str, str], args: argparse.Namespace, user_ids: list[int]
) -> dict[str, Any]:
    """The closed-loop maximum of the same processes, after 5 s of warm-up."""
    from django.db import connection

    busy = benchlib.wait_for_quiet()
    by_window, errors, exit_codes = run_workers(
        env,
        rate=0,
        seconds=args.probe_seconds,
        processes=args.processes,
        user_ids=user_ids,
        window=args.probe_seconds,
    )
    records = by_window[0]
    steady = [r for r in records if r[0] >= PROBE_WARMUP]
    max_rate = len(steady) / (args.probe_seconds - PROBE_WARMUP)
    with connection.cursor() as cur:  # start the soak from a vacuumed table
        cur.execute("VACUUM ANALYZE fulfillment_cardcode")
    connection.close()
    return {
        "busy_before": busy,
        "completed": len(records),
        "max_orders_per_s": round(max_rate, 1),
        "errors": dict(errors),
        "exit_codes": exit_codes,
    }


def main() -> None:
    args = parse_args()
    started = dt.datetime.now(tz=dt.UTC)
    seconds = args.minutes * 60
    redis_url = args.redis_url or None
    if redis_url:
        redis_clean(redis_url)
    report: dict[str, Any] = {"machine": benchlib.machine_info(), "args": vars(args)}
    env = benchlib.fresh_django(
        db_name=DB_NAME,
        redis_url=redis_url,
        extra_env={"CACHE_KEY_PREFIX": CACHE_PREFIX},
    )
    from django.contrib.auth import get_user_model
    from django.db import connection

    from fulfillment.models import CardCode

    print(f"loading {args.codes:,} sealed codes into {DB_NAME} ...", flush=True)
    report["pool"] = pool = load_pool(env, codes=args.codes)
    print(f"pool: {pool}", flush=True)
    report["autovacuum"] = settings = autovacuum_settings()
    emulate = settings["server"]["autovacuum"] != "on"
    if emulate and args.no_emulate_autovacuum:
        settings["problems"].append("the server runs with autovacuum = off")
    settings["emulated"] = emulate and not args.no_emulate_autovacuum
    print(
        f"card-code table reloptions: {settings['reloptions']}; server: "
        f"{settings['server']}; autovacuum emulated: {settings['emulated']}"
    )
    user_ids = list(
        get_user_model().objects.order_by("id").values_list("id", flat=True)
    )[: USERS_PER_PROCESS * args.processes * 2]
    half = len(user_ids) // 2
    connection.close()

    rate = args.rate
    if not rate:
        report["probe"] = found = probe(env, args, user_ids[:half])
        rate = round(args.load * found["max_orders_per_s"], 1)
        print(f"probe: {found}; offering {rate} orders/s", flush=True)
    probed = report.get("probe", {"completed": 0, "errors": {}, "exit_codes": []})
    if rate <= 0 or rate * seconds + probed["completed"] > args.codes:
        raise SystemExit(
            f"cannot offer {rate}/s for {seconds:.0f} s on {args.codes:,} codes"
        )

    report["busy_before_soak"] = benchlib.wait_for_quiet()
    daemon = VacuumDaemon(table=CardCode._meta.db_table, settings=settings)
    if settings["emulated"]:
        daemon.start()
    sampler = Sampler(pool["sku_id"])
    print(
        f"soak: {rate} orders/s for {seconds:.0f} s, {args.processes} processes",
        flush=True,
    )
    by_window, errors, exit_codes = run_workers(
        env,
        rate=rate,
        seconds=seconds,
        processes=args.processes,
        user_ids=user_ids[half:],
        window=args.window,
        on_window=sampler,
    )
    daemon.stop.set()
    settings["emulated_vacuums"] = daemon.runs
    rows = window_rows(by_window, seconds=seconds, window=args.window)
    for row, sample in zip(rows, sampler.samples, strict=False):
        row.update({k: v for k, v in sample.items() if k != "window"})
        row["cpu_ms_per_order"] = sample["our_cpu_s"] * 1000 / max(1, row["completed"])
    flat = flatness(rows, by_window, rate=rate, seconds=seconds, window=args.window)
    soaked = sum(len(v) for v in by_window.values())
    checks = db_checks(completed=soaked + probed["completed"], initial=args.codes)
    if redis_url:
        report["email_tasks_purged"] = redis_clean(redis_url)
    errors.update(probed["errors"])
    exit_codes += probed["exit_codes"]
    problems = [
        *([] if flat["ok"] else ["not flat"]),
        *settings["problems"],
        *checks["problems"],
        *([f"worker errors {dict(errors)}"] if errors else []),
        *([f"worker exit codes {exit_codes}"] if any(exit_codes) else []),
    ]
    judged = rows[1:] or rows
    summary = (
        f"{'OK' if not problems else 'NOT OK'}: {soaked:,} orders at {rate}/s offered over "
        f"{seconds / 60:g} min on {args.codes:,} codes, {args.processes} processes; windows "
        f"{min(r['orders_per_s'] for r in judged):.1f}-{max(r['orders_per_s'] for r in judged):.1f}/s; "
        f"claim p99 {flat['claim_p99_first_third_ms']:.1f} -> {flat['claim_p99_last_third_ms']:.1f} ms; "
        f"vacuums {sampler.samples[-1]['vacuums'] if sampler.samples else '?'}"
        f"{' (emulated autovacuum: server has it off)' if settings['emulated'] else ''}; "
        f"errors {sum(errors.values())}; DB checks {'pass' if not checks['problems'] else 'FAIL'}"
        + (f"; problems: {'; '.join(problems)}" if problems else "")
    )
    report.update(
        {
            "ok": not problems,
            "summary": summary,
            "problems": problems,
            "offered_rate": rate,
            "processes": args.processes,
            "windows": rows,
            "flatness": flat,
            "errors": dict(errors),
            "worker_exit_codes": exit_codes,
            "db_checks": checks,
            "started": started.isoformat(timespec="seconds"),
            "finished": dt.datetime.now(tz=dt.UTC).isoformat(timespec="seconds"),
        }
    )
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(report, indent=2, default=str), encoding="utf-8"
        )
        print(f"wrote {args.json}")
    if problems:
        raise SystemExit(1)


# (header, key of a window row) for the report's table
COLUMNS = (
    ("win", "window"),
    ("orders/s", "orders_per_s"),
    ("claim p50", "claim_p50_ms"),
    ("claim p99", "claim_p99_ms"),
    ("order p99", "order_p99_ms"),
    ("max lag", "max_lag_ms"),
    ("dead tup", "n_dead_tup"),
    ("vacuums", "vacuums"),
    ("claim idx KB", "claim_idx_kb"),
    ("plan bufs", "claim_buffers"),
    ("plan ms", "claim_explain_ms"),
    ("CPU ms/order", "cpu_ms_per_order"),
)


def print_report(report: dict[str, Any]) -> None:
    benchlib.print_table(
        f"Soak: {report['offered_rate']} orders/s offered, {report['processes']} "
        "processes (latencies in ms; CPU: machine busy / ours / others)",
        [h for h, _ in COLUMNS] + ["CPU"],
        [
            [r.get(key, "-") for _, key in COLUMNS]
            + [
                "/".join(
                    f"{r.get(k, 0):.0%}" for k in ("cpu_busy", "cpu_ours", "cpu_others")
                )
            ]
            for r in report["windows"]
        ],
    )
    flat = report["flatness"]
    print(
        f"\nflat: {flat['ok']} (windows after the first off the rate by >{TOLERANCE:.0%}: "
        f"{flat['windows_off_rate'] or 'none'}; claim p99 first third "
        f"{flat['claim_p99_first_third_ms']:.1f} ms, last third "
        f"{flat['claim_p99_last_third_ms']:.1f} ms, limit x{P99_GROWTH}; claims in "
        f"those thirds: {flat['claims_in_thirds']})"
    )
    settings = report["autovacuum"]
    print(
        f"autovacuum emulated: {settings['emulated']}; runs: {settings.get('emulated_vacuums')}"
    )
    checks = report["db_checks"]
    print(
        "DB checks: "
        + ", ".join(f"{k}={v}" for k, v in checks.items() if k != "problems")
    )
    print(f"problems: {report['problems'] or 'none'}")
    print(f"\n{report['summary']}")


if __name__ == "__main__":
    main()
