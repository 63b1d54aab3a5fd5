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
import json
from pathlib import Path
from typing import Any

import benchlib
from soak_checks import Sampler, db_checks, flatness, print_report, window_rows
from soak_setup import (
    DB_NAME,
    USERS_PER_PROCESS,
    VacuumDaemon,
    autovacuum_settings,
    load_pool,
)
from soak_workers import run_workers

CACHE_PREFIX = "kaquan-bench-soak"
PROBE_WARMUP = 5.0  # seconds of the probe not counted


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


if __name__ == "__main__":
    main()
