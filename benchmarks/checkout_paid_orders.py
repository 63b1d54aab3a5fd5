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
import datetime as dt
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import benchlib
import psycopg2
import rush_wrk
from loadgen import RAW_ROUND_TRIPS

DB_NAME = "kaquan_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/11"
# The redis-server's pid when the run uses Redis: its CPU is accounted too (not part
# of the "server CPU" figure, which stays gunicorn + PostgreSQL as in the issue).
REDIS_PID: list[int] = []
PRICE = Decimal("30.00")
SKU_APP, SKU_RAW, SKU_RUSH = "BENCH-APP", "BENCH-RAW", "BENCH-RUSH"
STOCK_TEST_CLIENTS = 8
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


# --- setup ---------------------------------------------------------------------


def codes_file(count: int) -> bytes:
    # 16 random hex characters: the shape of a streaming-membership card code.
    return "\n".join(secrets.token_hex(8).upper() for _ in range(count)).encode()


def seed(
    *, codes: int, raw_codes: int, rush_codes: int, shoppers: int, rush_shoppers: int
) -> dict[str, Any]:
    """Catalog, codes (through card_codes_import), shoppers with live sessions."""
    from django.conf import settings
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.auth.hashers import make_password

    from catalog.models import Platform, Product, Sku
    from fulfillment.services import card_codes_import

    platform = Platform.objects.create(name="Bench", slug="bench", account_rule="any")
    skus = {}
    timings = {}
    for code, count in ((SKU_APP, codes), (SKU_RAW, raw_codes), (SKU_RUSH, rush_codes)):
        product = Product.objects.create(
            platform=platform, name=f"Bench {code}", slug=code.lower()
        )
        sku = Sku.objects.create(
            product=product,
            code=code,
            name="月卡",
            face_value=PRICE,
            price=PRICE,
            max_per_order=5,
        )
        t0 = time.perf_counter()
        result = card_codes_import(
            sku=sku, content=codes_file(count), file_name=f"{code}.txt", actor=None
        )
        timings[code] = time.perf_counter() - t0
        if result.imported != count:
            raise SystemExit(f"seeding {code}: imported {result.imported} of {count}")
        skus[code] = sku.id

    User = get_user_model()
    unusable = make_password(None)  # no password hashing: nobody logs in through a form
    users = User.objects.bulk_create(
        [
            User(
                username=f"shopper{i}",
                email=f"shopper{i}@example.com",
                password=unusable,
            )
            for i in range(shoppers + rush_shoppers)
        ]
    )
    sessions = sessions_create(
        [
            {
                SESSION_KEY: str(user.pk),
                BACKEND_SESSION_KEY: settings.AUTHENTICATION_BACKENDS[0],
                HASH_SESSION_KEY: user.get_session_auth_hash(),
            }
            for user in users
        ]
    )
    return {
        "sku_ids": skus,
        "import_seconds": timings,
        "sessions": sessions[:shoppers],
        "rush_sessions": sessions[shoppers:],
        "user_ids": [u.pk for u in users[:shoppers]],
    }


def analyze(dsn: str) -> None:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("ANALYZE")


def risk_rules_create(*, sku_id: int) -> None:
    """Twenty active rules that all evaluate and never fire on the bench's shoppers
    (every order comes from one address: real limits would stop the load)."""
    from risk_overhead import create_rules

    from catalog.models import Sku
    from risk.cache import risk_rules_changed
    from risk.models import RiskRule

    create_rules({"sku": Sku.objects.get(pk=sku_id)})
    RiskRule.objects.exclude(threshold=None).update(threshold=Decimal(10) ** 9)
    risk_rules_changed()
    if RiskRule.objects.filter(active=True).count() != 20:
        raise SystemExit("expected 20 active risk rules")


DB_SESSION_ENGINES = (
    "django.contrib.sessions.backends.db",
    "django.contrib.sessions.backends.cached_db",
)


def sessions_create(payloads: list[dict[str, str]]) -> list[str]:
    """A live session per payload; returns their keys.

    Sessions the database holds (db, cached_db: a cache miss reads the row) are
    inserted in bulk, since a rush needs one per buyer (10,000); any other engine
    gets one store.create() each.
    """
    from importlib import import_module

    from django.conf import settings
    from django.contrib.sessions.backends.base import VALID_KEY_CHARS
    from django.contrib.sessions.models import Session
    from django.utils import timezone
    from django.utils.crypto import get_random_string

    store_class = import_module(settings.SESSION_ENGINE).SessionStore
    if settings.SESSION_ENGINE not in DB_SESSION_ENGINES:
        keys = []
        for payload in payloads:
            store = store_class()
            store.update(payload)
            store.create()
            keys.append(store.session_key)
        return keys
    encoder = store_class()
    expires = timezone.now() + dt.timedelta(seconds=settings.SESSION_COOKIE_AGE)
    rows = [
        Session(
            session_key=get_random_string(32, VALID_KEY_CHARS),
            session_data=encoder.encode(payload),
            expire_date=expires,
        )
        for payload in payloads
    ]
    Session.objects.bulk_create(rows, batch_size=2000)
    if settings.SESSION_ENGINE.endswith("cached_db"):
        # A buyer in a rush has just loaded the confirmation page, so their
        # session is in the cache as cached_db leaves it after a first read.
        from django.core.cache import caches

        caches[settings.SESSION_CACHE_ALIAS].set_many(
            {
                store_class.cache_key_prefix + key: payload
                for key, payload in zip(
                    [row.session_key for row in rows], payloads, strict=True
                )
            },
            settings.SESSION_COOKIE_AGE,
        )
    return [row.session_key for row in rows]


# --- checks --------------------------------------------------------------------


def verify(
    dsn: str, *, sku_id: int, expected_paid: int, expected_pending: int = 0
) -> dict[str, Any]:
    """The database agrees with what the clients were told."""
    queries = {
        "orders_delivered": """
            SELECT count(*) FROM orders_order o JOIN orders_orderline l ON l.order_id = o.id
            WHERE l.sku_id = %(sku)s AND o.status = 'delivered'""",
        "orders_not_delivered": """
            SELECT count(*) FROM orders_order o JOIN orders_orderline l ON l.order_id = o.id
            WHERE l.sku_id = %(sku)s AND o.status <> 'delivered'""",
        "codes_sold": "SELECT count(*) FROM fulfillment_cardcode WHERE sku_id = %(sku)s AND status = 'sold'",
        "codes_reserved": "SELECT count(*) FROM fulfillment_cardcode WHERE sku_id = %(sku)s AND status = 'reserved'",
        # A delivered line of quantity 1 holding anything but exactly one sold code.
        "lines_with_wrong_code_count": """
            SELECT count(*) FROM (
                SELECT l.id FROM orders_orderline l
                JOIN orders_order o ON o.id = l.order_id AND o.status = 'delivered'
                LEFT JOIN fulfillment_cardcode c ON c.order_line_id = l.id AND c.status = 'sold'
                WHERE l.sku_id = %(sku)s GROUP BY l.id HAVING count(c.id) <> 1
            ) bad""",
        # The same code (plaintext fingerprint) sold more than once.
        "codes_sold_twice": """
            SELECT count(*) - count(DISTINCT fingerprint) FROM fulfillment_cardcode
            WHERE sku_id = %(sku)s AND status = 'sold'""",
        "payments": """
            SELECT count(*) FROM orders_payment p JOIN orders_orderline l ON l.order_id = p.order_id
            WHERE l.sku_id = %(sku)s""",
    }
    out: dict[str, Any] = {}
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        for name, query in queries.items():
            cur.execute(query, {"sku": sku_id})
            out[name] = cur.fetchone()[0]
    conn.close()
    problems = []
    if out["orders_delivered"] != expected_paid:
        problems.append(
            f"delivered {out['orders_delivered']} != paid responses {expected_paid}"
        )
    if out["codes_sold"] != expected_paid:
        problems.append(
            f"codes sold {out['codes_sold']} != paid responses {expected_paid}"
        )
    if out["payments"] != expected_paid:
        problems.append(f"payments {out['payments']} != paid responses {expected_paid}")
    if out["lines_with_wrong_code_count"]:
        problems.append(
            f"{out['lines_with_wrong_code_count']} delivered lines without exactly one code"
        )
    if out["codes_sold_twice"]:
        problems.append(f"{out['codes_sold_twice']} codes sold twice")
    if out["codes_reserved"] != expected_pending:
        problems.append(
            f"reserved codes {out['codes_reserved']} != unpaid orders {expected_pending}"
        )
    out["ok"] = not problems
    out["problems"] = problems
    return out


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


def start_py_spy(
    py_spy: str, master_pid: int, *, seconds: float, tag: str
) -> tuple[subprocess.Popen[bytes], Path]:
    """Sample every gunicorn worker (collapsed stacks) while a run goes on."""
    out = benchlib.RESULTS / f"py-spy-checkout-{tag}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(master_pid),
            "--subprocesses",
            "--format",
            "raw",
            "--rate",
            "200",
            "--duration",
            str(int(seconds)),
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, out


def finish_py_spy(proc: subprocess.Popen[bytes], out: Path) -> dict[str, Any]:
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    summary = benchlib.collapsed_summary(out)
    benchlib.print_profile(
        summary, title=f"py-spy over the gunicorn workers ({out.name})"
    )
    return summary


def available_codes(dsn: str, *, sku_id: int) -> int:
    conn = psycopg2.connect(dsn)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM fulfillment_cardcode WHERE sku_id = %s AND status = 'available'",
            [sku_id],
        )
        count = int(cur.fetchone()[0])
    conn.close()
    return count


def pad_stock(dsn: str, *, sku_id: int, count: int) -> int:
    """Add `count` available codes to a SKU with COPY (random ciphertext-like text, never
    decrypted on this path), then VACUUM ANALYZE; returns the available count after."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "SELECT batch_id FROM fulfillment_cardcode WHERE sku_id = %s LIMIT 1",
            [sku_id],
        )
        batch_id = cur.fetchone()[0]
        now = dt.datetime.now(tz=dt.UTC).isoformat()
        rows = io.StringIO()
        for _ in range(count):
            # sku, batch, ciphertext (100 chars), key id, fingerprint (64 hex), hint, status, created
            rows.write(
                f"{sku_id}\t{batch_id}\t{secrets.token_urlsafe(75)}\tpadding\t{secrets.token_hex(32)}\tPA****NG\tavailable\t{now}\n"
            )
        rows.seek(0)
        cur.copy_from(
            rows,
            "fulfillment_cardcode",
            columns=benchlib.CARDCODE_COPY_COLUMNS,
        )
        cur.execute("VACUUM ANALYZE fulfillment_cardcode")
    conn.close()
    return available_codes(dsn, sku_id=sku_id)


def redis_purge(url: str) -> int:
    """Drop the Celery queue and kombu bindings our gunicorn published to; returns tasks dropped."""
    import redis

    client = redis.Redis.from_url(url)
    queued = int(client.llen("celery"))
    keys = [b"celery", *client.scan_iter(match="_kombu.binding*")]
    client.delete(*keys)
    client.close()
    return queued


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


def rush_summarize(rush: dict[str, Any], *, codes: int, attempts: int) -> None:
    """Attempts per second, the checkout POST's latency, and what a rush must hold:
    exactly the stock sold and paid, no code twice, no 5xx (nor any other error),
    nothing left reserved, every buyer answered."""
    outcomes = rush["outcomes"]
    v = rush["verify"]
    answered = sum(outcomes.values())
    rush["attempts"] = answered
    rush["attempts_per_s"] = answered / rush["elapsed_s"] if rush["elapsed_s"] else 0.0
    rush["checkout_p50_ms"] = rush["step_p50_ms"].get("checkout") or float("nan")
    rush["checkout_p99_ms"] = rush["step_p99_ms"].get("checkout") or float("nan")
    others = {k: n for k, n in outcomes.items() if k not in ("paid", "sold_out")}
    rush["checks"] = {
        "sold_exactly_stock": outcomes.get("paid", 0) == codes
        and v["codes_sold"] == codes
        and v["orders_delivered"] == codes
        and v["payments"] == codes,
        "no_code_twice": v["codes_sold_twice"] == 0
        and v["lines_with_wrong_code_count"] == 0,
        "no_5xx": not any(k.rsplit("_", 1)[-1].startswith("5") for k in others),
        "no_other_errors": not others,
        "nothing_reserved": v["codes_reserved"] == 0,
        # wrk keeps buyers clicking for its whole run: each must have tried once
        "every_buyer_answered": answered == attempts
        if rush.get("driver") != "wrk"
        else answered >= attempts,
    }


def _cpu_cells(r: dict[str, Any]) -> list[Any]:
    ms = r["cpu_ms_per_order"]
    return [
        ms["gunicorn"],
        ms["postgres"],
        ms.get("redis", 0.0),
        ms["loadgen"],
        f"{r['busy_before']:.0%}",
        f"{r['other_cpu_share']:.0%}",
        f"{r['system_cpu_steal']:.0%}",
    ]


CPU_HEADERS = [
    "app CPU ms/order",
    "pg CPU ms/order",
    "redis CPU ms/order",
    "loadgen CPU ms/order",
    "busy before",
    "others' CPU",
    "steal",
]


def print_report(report: dict[str, Any], concurrencies: list[int]) -> None:
    raw_by_c = {r["clients"]: r for r in report["raw"]}
    rows = []
    for r in report["app"]:
        raw = raw_by_c.get(r["clients"])
        errors = sum(v for k, v in r["outcomes"].items() if k != "paid")
        rows.append(
            [
                r["clients"],
                r["paid"],
                errors,
                r["paid_per_s"],
                r["latency_p50_ms"],
                r["latency_p99_ms"],
                r["step_p50_ms"].get("checkout"),
                r["step_p50_ms"].get("pay_page"),
                r["step_p50_ms"].get("notify"),
                *_cpu_cells(r),
                raw["paid_per_s"] if raw else float("nan"),
                f"{r['paid_per_s'] / raw['paid_per_s']:.1%}" if raw else "-",
                "ok" if r["verify"]["ok"] else "FAIL",
            ]
        )
    benchlib.print_table(
        f"App: paid orders through HTTP (gunicorn {report['server']}, REDIS_URL {'set' if report['redis'] else 'unset'})",
        [
            "clients",
            "paid",
            "errors",
            "orders/s",
            "p50 ms",
            "p99 ms",
            "checkout p50",
            "pay page p50",
            "notify p50",
            *CPU_HEADERS,
            "raw orders/s",
            "app/raw",
            "DB check",
        ],
        rows,
    )
    benchlib.print_table(
        f"Baseline: the same SQL with raw psycopg2 ({RAW_ROUND_TRIPS} round trips per order, one connection per client)",
        [
            "clients",
            "paid",
            "errors",
            "orders/s",
            "p50 ms",
            "p99 ms",
            *CPU_HEADERS,
            "DB check",
        ],
        [
            [
                r["clients"],
                r["paid"],
                sum(v for k, v in r["outcomes"].items() if k != "paid"),
                r["paid_per_s"],
                r["latency_p50_ms"],
                r["latency_p99_ms"],
                *_cpu_cells(r),
                "ok" if r["verify"]["ok"] else "FAIL",
            ]
            for r in report["raw"]
        ],
    )
    rush = report.get("rush")
    if rush:
        v = rush["verify"]
        benchlib.print_table(
            f"Rush ({rush.get('driver', 'python')}): {rush['clients']} clients, {rush['attempts']} attempts "
            "(latency: the checkout POST)",
            [
                "paid",
                "sold out",
                "other",
                "elapsed s",
                "attempts/s",
                "p50 ms",
                "p99 ms",
                "delivered",
                "codes sold",
                "sold twice",
                "DB check",
            ],
            [
                [
                    rush["outcomes"].get("paid", 0),
                    rush["outcomes"].get("sold_out", 0),
                    json.dumps(
                        {
                            k: n
                            for k, n in rush["outcomes"].items()
                            if k not in ("paid", "sold_out")
                        }
                    ),
                    rush["elapsed_s"],
                    rush["attempts_per_s"],
                    rush["checkout_p50_ms"],
                    rush["checkout_p99_ms"],
                    v["orders_delivered"],
                    v["codes_sold"],
                    v["codes_sold_twice"],
                    "ok"
                    if v["ok"] and all(rush["checks"].values())
                    else "FAIL "
                    + "; ".join(
                        [
                            *v["problems"],
                            *(k for k, ok in rush["checks"].items() if not ok),
                        ]
                    ),
                ]
            ],
        )
    stock = report.get("stock_test")
    if stock:
        rows = []
        for label, r in (
            (
                "seeded pool",
                next(
                    (a for a in report["app"] if a["clients"] == STOCK_TEST_CLIENTS),
                    None,
                ),
            ),
            ("padded pool", stock),
        ):
            if r is None:
                continue
            rows.append(
                [
                    label,
                    r.get("available_before", "-"),
                    r["clients"],
                    r["paid_per_s"],
                    r["step_p50_ms"].get("checkout"),
                    r["cpu_ms_per_order"]["gunicorn"],
                    r["cpu_ms_per_order"]["postgres"],
                    f"{r['other_cpu_share']:.0%}",
                    "ok" if r["verify"]["ok"] else "FAIL",
                ]
            )
        benchlib.print_table(
            "Stock sensitivity: the same run with many more available codes in the SKU",
            [
                "pool",
                "available codes",
                "clients",
                "orders/s",
                "checkout p50 ms",
                "app CPU ms/order",
                "pg CPU ms/order",
                "others' CPU",
                "DB check",
            ],
            rows,
        )
    if "email_tasks_purged" in report:
        print(
            f"\ndelivery-email tasks left in Redis and purged: {report['email_tasks_purged']}"
        )
    print(
        "\nCPU columns: CPU seconds per paid order of gunicorn (master + workers), of the PostgreSQL"
        "\nbackends serving the benchmark database, and of the load generator; 'busy before' is the"
        "\nmachine's CPU use just before the run, 'others' CPU' the share of both cores used by"
        "\nprocesses that are not ours during it (other work on a shared machine), 'steal' the"
        "\nshare the hypervisor gave to other guests."
    )


if __name__ == "__main__":
    main()
