"""Paid orders per second through the real path, over HTTP, against gunicorn.

    .venv/bin/python benchmarks/checkout_paid_orders.py [--duration 20] [--json]

1. Recreate the database (kaquan_bench), migrate, collectstatic (DEBUG is off, so the
   pay page needs the static manifest), seed three SKUs through the real import
   service (card_codes_import), create shoppers and their Django sessions directly.
2. Start `gunicorn config.wsgi -w 4 -k sync` with DEBUG=false, CONN_MAX_AGE=600 and
   REDIS_URL set (the delivery email task is published to Redis as in production;
   nothing consumes it and the queue is purged at the end).
3. For each concurrency, a load generator in its own process (benchmarks/loadgen.py,
   one keep-alive httpx client per thread) buys: POST /checkout/ -> 302 to the pay
   page -> GET it and read the order number -> POST the signed notify -> `success`.
   CPU seconds of gunicorn, of the database's PostgreSQL backends and of the load
   generator are read from /proc, so a figure taken on a shared machine can be judged.
4. Stock test: 200,000 more available codes (COPY), then 8 clients again.
5. A rush: far more buyers than codes (each one checkout POST by another logged-in
   shopper, 64 at a time); exactly as many orders as codes must succeed, the rest must
   be told "sold out" (409, or a redirect to the product page), none a 5xx; reported
   as attempts per second and the checkout POST's p50/p99.
6. The same SQL work with raw psycopg2, one connection per client thread, on a fresh
   pool of codes: the same-run baseline (gunicorn stopped by then).
After every phase the database is checked: orders delivered == payments == codes sold
== paid responses, one sold code per delivered line, no code sold twice, none left
reserved. docs/PERFORMANCE.md has the figures and how to read them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import benchlib
import rush_wrk
from paid_orders_checks import (
    available_codes,
    pad_stock,
    redis_purge,
    rush_summarize,
    verify,
)
from paid_orders_pyspy import finish_py_spy, start_py_spy
from paid_orders_report import print_report
from paid_orders_setup import (
    PRICE,
    SKU_APP,
    SKU_RAW,
    SKU_RUSH,
    STOCK_TEST_CLIENTS,
    analyze,
    risk_rules_create,
    seed,
)
from paid_orders_setup import codes_file as codes_file  # partner_api.py uses it

DB_NAME = "kaquan_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/11"
# The redis-server's pid when the run uses Redis: its CPU is accounted too (not part
# of the "server CPU" figure, which stays gunicorn + PostgreSQL as in the issue).
REDIS_PID: list[int] = []
LOADGEN = str(Path(__file__).resolve().parent / "loadgen.py")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--concurrency", default="1,8,32", help="comma-separated client counts"
    )
    p.add_argument("--duration", type=float, default=20.0, help="seconds per app run")
    p.add_argument("--max-orders", type=int, default=12000, help="order cap per run")
    p.add_argument(
        "--raw-duration", type=float, default=10.0, help="seconds per raw-SQL run"
    )
    p.add_argument("--codes", type=int, default=20000, help="codes in the app's pool")
    p.add_argument(
        "--raw-codes", type=int, default=20000, help="codes in the raw baseline's pool"
    )
    p.add_argument("--rush-codes", type=int, default=200)
    p.add_argument("--rush-clients", type=int, default=64)
    p.add_argument("--rush-attempts", type=int, default=1000)
    p.add_argument(
        "--rush-driver",
        choices=("wrk", "python"),
        default="wrk" if shutil.which("wrk") else "python",
        help="wrk (as the floor is measured; rush_wrk.py) or loadgen.py's threads",
    )
    p.add_argument(
        "--rush-seconds",
        type=int,
        default=15,
        help="wrk rush: at least this long (the floor's runs), and on until every"
        " buyer has been answered once",
    )
    p.add_argument(
        "--rush-max-seconds",
        type=int,
        default=300,
        help="wrk rush: never longer than this (then the every-buyer check fails)",
    )
    p.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    p.add_argument("--worker-class", default="sync", help="gunicorn worker class")
    p.add_argument("--threads", type=int, default=1, help="gunicorn threads (gthread)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument(
        "--db-name",
        default=DB_NAME,
        help=f"benchmark database, recreated (default {DB_NAME}; must start kaquan_bench)",
    )
    p.add_argument(
        "--redis-url", default=DEFAULT_REDIS_URL, help="empty: run tasks in-process"
    )
    p.add_argument(
        "--stock-test",
        type=int,
        default=200000,
        help="then add this many available codes to the SKU and measure again at 8 clients (0: skip)",
    )
    p.add_argument(
        "--risk-rules",
        type=int,
        choices=(0, 20),
        default=0,
        help="20: the risk engine evaluates twenty active rules of every kind per checkout"
        " (benchmarks/risk_overhead.py's set, thresholds raised so none fires)",
    )
    p.add_argument(
        "--risk-counters",
        choices=("redis", "db"),
        default="redis",
        help="where the risk counters live (RISK_COUNTERS_REDIS_URL)",
    )
    p.add_argument(
        "--spread-ips",
        action="store_true",
        help="each checkout from its own X-Forwarded-For address (TRUSTED_PROXIES=127.0.0.1)",
    )
    p.add_argument(
        "--no-cookie-jar",
        action="store_true",
        help="the paid-orders driver before session 8: no cookie kept, the pay page"
        " GET without any (to compare; loadgen.py's Shopper)",
    )
    p.add_argument("--skip-raw", action="store_true")
    p.add_argument("--skip-rush", action="store_true")
    p.add_argument(
        "--json", action="store_true", help="also write benchmarks/results/*.json"
    )
    p.add_argument("--json-path", default="", help="write the JSON report to this path")
    p.add_argument(
        "--py-spy",
        default="",
        help="path to py-spy: sample the gunicorn workers during each app run",
    )
    return p.parse_args()


# --- load ----------------------------------------------------------------------


def loadgen(
    spec: dict[str, Any],
    *,
    server_pid: int | None = None,
    profile: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Run benchmarks/loadgen.py in its own process; returns its JSON result.

    Besides throughput it records where the CPU went: gunicorn (master and workers),
    the PostgreSQL backends of the benchmark database, the load generator, and
    everything else on the machine (other people's work shares these cores).
    """
    limit = spec["duration"] + 120  # every loop is bounded; this bounds the process too
    quiet = benchlib.wait_for_quiet()
    groups: dict[str, Any] = {"postgres": lambda: benchlib.pg_backends(DB_NAME)}
    if REDIS_PID:
        # The whole redis-server: every database of it (others' work too, if any).
        groups["redis"] = lambda: REDIS_PID
    if server_pid is not None:
        groups["gunicorn"] = lambda: benchlib.descendants(server_pid)
    spy = None
    if profile is not None and server_pid is not None:
        spy = start_py_spy(
            profile[0], server_pid, seconds=spec["duration"], tag=profile[1]
        )
    with benchlib.CpuMeter() as cpu, benchlib.CpuAccount(groups) as account:
        done = subprocess.run(
            [benchlib.PYTHON, LOADGEN],
            input=json.dumps(spec),
            capture_output=True,
            text=True,
            timeout=limit,
            check=False,
            cwd=Path(LOADGEN).parent,
        )
    if done.returncode != 0:
        raise SystemExit(f"loadgen failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    if spy is not None:
        result["profile"] = finish_py_spy(*spy)
    ncpu = os.cpu_count() or 1
    wall_cpu = result["elapsed_s"] * ncpu
    ours = {
        "gunicorn": account.seconds.get("gunicorn", 0.0),
        # raw mode: backends exit with their connections, the load generator reads them
        "postgres": account.seconds.get("postgres", 0.0) + result["backend_cpu_s"],
        "loadgen": result["loadgen_cpu_s"],
        "redis": account.seconds.get("redis", 0.0),
    }
    result["busy_before"] = quiet
    result["system_cpu_busy"] = cpu.busy
    result["system_cpu_steal"] = cpu.steal
    result["cpu_s"] = ours
    result["other_cpu_share"] = max(
        0.0, cpu.busy - cpu.steal - sum(ours.values()) / wall_cpu
    )
    paid = max(result["paid"], 1)
    result["cpu_ms_per_order"] = {k: v * 1000 / paid for k, v in ours.items()}
    result["server_cpu_ms_per_order"] = (
        (ours["gunicorn"] + ours["postgres"]) * 1000 / paid
    )
    return result


def main() -> None:
    global DB_NAME  # the module's loadgen() and checks read it
    args = parse_args()
    DB_NAME = args.db_name
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    redis_url = args.redis_url or None
    machine = benchlib.machine_info()
    print(f"machine: {machine}")
    dsn = benchlib.pg_dsn(DB_NAME)

    t_setup = time.perf_counter()
    if redis_url:
        redis_purge(redis_url)
        import redis

        server = redis.Redis.from_url(redis_url).info("server")
        REDIS_PID[:] = [int(server["process_id"])]
    env = benchlib.fresh_django(
        db_name=DB_NAME, redis_url=redis_url, collectstatic=True
    )
    # disjoint shoppers per run: 4 for the warm-up, then each concurrency, then the stock test
    app_clients = 4 + sum(concurrencies) + STOCK_TEST_CLIENTS
    seeded = seed(
        codes=args.codes,
        raw_codes=args.raw_codes,
        rush_codes=args.rush_codes,
        shoppers=app_clients,
        rush_shoppers=0 if args.skip_rush else args.rush_attempts,
    )
    if args.risk_rules:
        risk_rules_create(sku_id=seeded["sku_ids"][SKU_APP])
    if args.risk_counters == "redis" and redis_url:
        # Counters complete since long ago (risk/counters.py's epoch): the steady
        # state of a running shop, where Redis answers every window alone.
        import redis

        from risk.counters import EPOCH_KEY

        redis.Redis.from_url(redis_url).set(EPOCH_KEY, 0)
    if args.spread_ips:
        # Shoppers come from many addresses (loadgen's spread_ips), as in a real
        # shop: one address buying for everyone would be an attack the rules see.
        env["TRUSTED_PROXIES"] = "127.0.0.1"
    env["RISK_COUNTERS_REDIS_URL"] = (
        (redis_url or "") if args.risk_counters == "redis" else ""
    )
    benchlib.django_close_connections()
    print(
        f"setup {time.perf_counter() - t_setup:.1f} s (imports: {seeded['import_seconds']})"
    )

    gunicorn = benchlib.Gunicorn(
        env=env,
        port=args.port,
        workers=args.workers,
        worker_class=args.worker_class,
        threads=args.threads,
        log_path=benchlib.RESULTS / "gunicorn-checkout.log",
    )
    base_spec = {
        "port": args.port,
        "sku": SKU_APP,
        "price": str(PRICE),
        "secret": env["SANDBOX_PAY_SECRET"],
        "spread_ips": args.spread_ips,
        "cookie_jar": not args.no_cookie_jar,
    }
    report: dict[str, Any] = {
        "machine": machine,
        "args": vars(args),
        "server": " ".join(gunicorn.command[1:6])
        + (f" --threads {args.threads}" if args.threads > 1 else ""),
        "redis": bool(redis_url),
        "app": [],
        "raw": [],
    }
    sessions = list(seeded["sessions"])
    paid_total = 0
    gunicorn.start()
    try:
        warm = loadgen(
            {
                **base_spec,
                "mode": "app",
                "sessions": sessions[:4],
                "duration": 3,
                "max_orders": 500,
            }
        )
        sessions = sessions[4:]
        paid_total += warm["paid"]
        print(f"warm-up: {warm['paid']} paid orders, outcomes {warm['outcomes']}")
        # What autovacuum's analyze does in any real deployment (it is off on
        # this machine, server-wide): without it the tables that grew from empty
        # during setup and warm-up keep no statistics, and the planner takes
        # them for one row (the risk engine's counts walked every order line
        # per order: 78 ms instead of 0.6).
        analyze(dsn)

        for c in concurrencies:
            spec = {
                **base_spec,
                "mode": "app",
                "sessions": sessions[:c],
                "duration": args.duration,
                "max_orders": args.max_orders,
            }
            sessions = sessions[c:]
            profile = (args.py_spy, f"c{c}") if args.py_spy else None
            available = available_codes(dsn, sku_id=seeded["sku_ids"][SKU_APP])
            result = loadgen(spec, server_pid=gunicorn.pid, profile=profile)
            result["available_before"] = available
            paid_total += result["paid"]
            result["verify"] = verify(
                dsn, sku_id=seeded["sku_ids"][SKU_APP], expected_paid=paid_total
            )
            report["app"].append(result)
            print(
                f"app c={c}: {result['paid_per_s']:.1f} paid orders/s, outcomes {result['outcomes']}, verify ok={result['verify']['ok']} {result['verify']['problems']}"
            )
            print(
                f"   cookies the server set ({'kept' if spec['cookie_jar'] else 'not kept'}"
                f" by the driver): {result.get('cookies_set')}"
            )
            for err in result["first_errors"][:3]:
                print(f"   error: {err}")

        if args.stock_test:
            added = pad_stock(
                dsn, sku_id=seeded["sku_ids"][SKU_APP], count=args.stock_test
            )
            spec = {
                **base_spec,
                "mode": "app",
                "sessions": sessions[:STOCK_TEST_CLIENTS],
                "duration": args.duration / 2,
                "max_orders": args.max_orders,
            }
            sessions = sessions[STOCK_TEST_CLIENTS:]
            result = loadgen(spec, server_pid=gunicorn.pid)
            paid_total += result["paid"]
            result["verify"] = verify(
                dsn, sku_id=seeded["sku_ids"][SKU_APP], expected_paid=paid_total
            )
            result["available_before"] = added
            report["stock_test"] = result
            print(
                f"stock test ({added} codes available): {result['paid_per_s']:.1f} paid orders/s, outcomes {result['outcomes']}, verify ok={result['verify']['ok']}"
            )

        if not args.skip_rush:
            rush_spec = {
                **base_spec,
                "mode": "rush",
                "sku": SKU_RUSH,
                "sessions": seeded["rush_sessions"],
                "concurrency": args.rush_clients,
                # a bound, not a target: 20 attempts/s at the very least
                "duration": max(180, args.rush_attempts / 20),
            }
            if args.rush_driver == "wrk":
                rush = rush_wrk.run(
                    port=args.port,
                    sku=SKU_RUSH,
                    sessions=seeded["rush_sessions"],
                    connections=args.rush_clients,
                    secret=env["SANDBOX_PAY_SECRET"],
                    price=str(PRICE),
                    dsn=dsn,
                    sku_id=seeded["sku_ids"][SKU_RUSH],
                    server_pid=gunicorn.pid,
                    db_name=DB_NAME,
                    seconds=args.rush_seconds,
                    max_seconds=args.rush_max_seconds,
                )
            else:
                rush = loadgen(rush_spec, server_pid=gunicorn.pid)
            rush["verify"] = verify(
                dsn, sku_id=seeded["sku_ids"][SKU_RUSH], expected_paid=rush["paid"]
            )
            rush_summarize(rush, codes=args.rush_codes, attempts=args.rush_attempts)
            report["rush"] = rush
            print(
                f"rush: {rush['attempts']} attempts in {rush['elapsed_s']:.1f} s"
                + (f" (stopped: {rush['stopped']})" if rush.get("stopped") else "")
                + f", {rush['attempts_per_s']:.1f} attempts/s, "
                f"checkout p50 {rush['checkout_p50_ms']:.0f} ms p99 {rush['checkout_p99_ms']:.0f} ms, "
                f"outcomes {rush['outcomes']}, checks {rush['checks']}"
            )
    finally:
        gunicorn.stop()
        if redis_url:
            report["email_tasks_purged"] = redis_purge(redis_url)
            benchlib.redis_purge_prefix(redis_url, env["CACHE_KEY_PREFIX"])

    if not args.skip_raw:
        raw_paid = 0
        for c in concurrencies:
            spec = {
                "mode": "raw",
                "dsn": dsn,
                "sku_id": seeded["sku_ids"][SKU_RAW],
                "user_ids": seeded["user_ids"][:c],
                "price": str(PRICE),
                "duration": args.raw_duration,
                "max_orders": args.raw_codes // len(concurrencies),
            }
            result = loadgen(spec)
            raw_paid += result["paid"]
            result["verify"] = verify(
                dsn, sku_id=seeded["sku_ids"][SKU_RAW], expected_paid=raw_paid
            )
            report["raw"].append(result)
            print(
                f"raw c={c}: {result['paid_per_s']:.1f} paid orders/s, outcomes {result['outcomes']}, verify ok={result['verify']['ok']}"
            )

    print_report(report, concurrencies)
    checked = [*report["app"], *report["raw"]]
    checked += [report[k] for k in ("rush", "stock_test") if k in report]
    failed = [r for r in checked if not r["verify"]["ok"]]
    if "rush" in report and not all(report["rush"]["checks"].values()):
        failed.append(report["rush"])
    report["ok"] = not failed
    if args.json:
        print(f"\nwrote {benchlib.write_json('checkout_paid_orders', report)}")
    if args.json_path:
        path = Path(args.json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
        print(f"\nwrote {path}")
    print(f"\nverdict: {'FAIL' if failed else 'all database checks passed'}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
