"""Where a paid order's time goes, in-process: queries per step and a cProfile.

    .venv/bin/python benchmarks/profile_checkout.py [--orders 200] [--codes 30000]

Runs the same three requests as checkout_paid_orders.py (POST /checkout/, GET the
sandbox pay page, POST the signed notify; form-urlencoded bodies, as there) through
Django's full middleware stack
with the test Client, under the production settings the benchmark uses (DEBUG off,
REDIS_URL set, PostgreSQL), so no HTTP server or network is involved. Prints:
1. the SQL statements of one order, per step, with their count, and the
   connection health checks (CONN_HEALTH_CHECKS: one `SELECT 1` per request on a
   raw cursor, which the query log does not show);
2. wall and CPU time per step (median over --orders orders);
3. the CPU cost of single ORM calls (Python and PostgreSQL), for scale;
4. Python function calls per request (deterministic: the steadiest gauge of Python
   work on a shared machine);
5. the top functions of a cProfile (CPU clock) over all orders, by cumulative and own time.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import io
import pstats
import re
import secrets
import statistics
import sys
import time
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import benchlib

DB_NAME = "kaquan_bench_profile"
REDIS_URL = "redis://127.0.0.1:6379/11"
PRICE = Decimal("30.00")
SKU = "BENCH-PROFILE"
ORDER_NUMBER_RE = re.compile(r'class="order-number">([^<]+)<')
# Bodies as browsers, the benchmark's load generator and gateways send them (the
# test Client's default, multipart, costs the server more to parse).
FORM = "application/x-www-form-urlencoded"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--orders", type=int, default=200, help="orders to time and profile")
    p.add_argument("--codes", type=int, default=30000, help="codes in the pool")
    p.add_argument("--redis-url", default=REDIS_URL, help="empty: tasks run in-process")
    p.add_argument(
        "--db-name",
        default=DB_NAME,
        help="the database to recreate (a name starting kaquan_bench)",
    )
    p.add_argument("--top", type=int, default=35, help="profile rows to print")
    p.add_argument(
        "--skip-cprofile", action="store_true", help="time only (e.g. under py-spy)"
    )
    p.add_argument("--pstats", default="", help="also write the cProfile data here")
    p.add_argument(
        "--no-cookie-jar",
        action="store_true",
        help="every order starts with only the session and CSRF cookies (before"
        " session 8: a new device cookie signed per checkout)",
    )
    p.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="leave the warmed heap in the collector (config/wsgi.py freezes it)",
    )
    return p.parse_args()


def setup(args: argparse.Namespace) -> tuple[str, str]:
    from importlib import import_module

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
    product = Product.objects.create(
        platform=platform, name="Bench", slug="bench-profile"
    )
    sku = Sku.objects.create(
        product=product, code=SKU, name="月卡", face_value=PRICE, price=PRICE
    )
    content = "\n".join(
        secrets.token_hex(8).upper() for _ in range(args.codes)
    ).encode()
    card_codes_import(sku=sku, content=content, file_name="codes.txt", actor=None)
    user = get_user_model().objects.create(
        username="shopper", email="shopper@example.com", password=make_password(None)
    )
    # The configured engine (cached_db: the session is in the cache and the table).
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    assert store.session_key is not None  # noqa: S101
    return store.session_key, secrets.token_hex(16)


class _Capture:
    """The SQL the ORM logs during one request, plus the connection health checks
    (CONN_HEALTH_CHECKS runs its `SELECT 1` on a raw cursor the ORM does not log)."""

    def __init__(self, step: str, queries: dict[str, Any]) -> None:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        self.connection = connection
        self.ctx = CaptureQueriesContext(connection)
        self.health_checks = 0
        queries[step] = self

    def __enter__(self) -> _Capture:
        real = self.connection.is_usable

        def counted() -> bool:
            self.health_checks += 1
            return bool(real())

        self.connection.is_usable = counted
        self.ctx.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ctx.__exit__(*exc)
        del self.connection.is_usable  # the class's method again

    @property
    def statements(self) -> list[str]:
        return [q["sql"] for q in self.ctx.captured_queries]


class _CallCounter:
    """Python function calls made during one request: a deterministic gauge of the
    Python work, steadier than CPU time on a machine others are using."""

    def __init__(self, into: list[int]) -> None:
        self.into = into
        self.count = 0

    def _tick(self, frame: Any, event: str, arg: Any) -> None:
        if event in ("call", "c_call"):
            self.count += 1

    def __enter__(self) -> _CallCounter:
        sys.setprofile(self._tick)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.setprofile(None)
        self.into.append(self.count)


def one_order(
    client: Any,
    *,
    session_key: str,
    csrf: str,
    secret: str,
    timings: dict[str, list[float]] | None = None,
    cpu: dict[str, list[float]] | None = None,
    queries: dict[str, Any] | None = None,
    calls: dict[str, list[int]] | None = None,
    keep_cookies: bool = True,
) -> dict[str, Any]:
    """One paid order as one shopper's browser: the client's cookies (the session
    and CSRF cookies, then whatever the shop set, such as the device cookie) go
    with the checkout and the pay page and are kept from order to order; the
    notify, the gateway's call, carries none. keep_cookies=False: the shopper
    starts every order with only the session and CSRF cookies (before session 8).
    """
    from contextlib import nullcontext
    from http.cookies import SimpleCookie

    from django.db import close_old_connections
    from loadgen import sign

    def capture(step: str) -> Any:
        if calls is not None:
            return _CallCounter(calls.setdefault(step, []))
        if queries is None:
            return nullcontext()
        return _Capture(step, queries)

    known = client.cookies.get("sessionid")
    if not keep_cookies or known is None or known.value != session_key:
        client.cookies.clear()
        client.cookies["sessionid"] = session_key
        client.cookies["csrftoken"] = csrf
    c0, t0 = time.process_time(), time.perf_counter()
    # What the WSGI handler does at request_started (the test Client skips it):
    # with CONN_HEALTH_CHECKS the next query pings the connection first.
    close_old_connections()
    with capture("checkout"):
        r = client.post(
            "/checkout/",
            urlencode(
                {"sku": SKU, "quantity": "1", "token": secrets.token_urlsafe(16)}
            ),
            content_type=FORM,
            headers={"X-CSRFToken": csrf},
        )
    c1, t1 = time.process_time(), time.perf_counter()
    if r.status_code != 302 or not r["Location"].startswith("/pay/sandbox/"):
        raise SystemExit(f"checkout answered {r.status_code} {r.get('Location')}")
    close_old_connections()
    with capture("pay_page"):
        page = client.get(r["Location"])
    c2, t2 = time.process_time(), time.perf_counter()
    numbers = ORDER_NUMBER_RE.findall(page.content.decode())
    fields = {
        "out_trade_no": numbers[0],
        "trade_no": numbers[1],
        "total_amount": str(PRICE),
        "trade_status": "TRADE_SUCCESS",
        "notify_id": secrets.token_hex(16),
    }
    fields["sign"] = sign(fields, secret)
    close_old_connections()
    shopper = client.cookies
    client.cookies = (
        SimpleCookie()
    )  # the gateway's request carries none of the shopper's
    with capture("notify"):
        n = client.post(
            "/payments/notify/sandbox/", urlencode(fields), content_type=FORM
        )
    client.cookies = shopper  # nor does the shopper keep what the gateway was set
    c3, t3 = time.process_time(), time.perf_counter()
    if n.content != b"success":
        raise SystemExit(f"notify answered {n.status_code} {n.content[:200]!r}")
    if timings is not None:
        timings["checkout"].append(t1 - t0)
        timings["pay_page"].append(t2 - t1)
        timings["notify"].append(t3 - t2)
    if cpu is not None:
        cpu["checkout"].append(c1 - c0)
        cpu["pay_page"].append(c2 - c1)
        cpu["notify"].append(c3 - c2)
    return fields


class GcMeter:
    """Python's cyclic garbage collections (count and CPU per generation) while
    the block runs: a cost of the request path that no function profile shows."""

    def __enter__(self) -> GcMeter:
        self.count = [0, 0, 0]
        self.cpu = [0.0, 0.0, 0.0]
        self._began = 0.0
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.process_time()
        else:
            generation = info["generation"]
            self.count[generation] += 1
            self.cpu[generation] += time.process_time() - self._began

    def summary(self, orders: int) -> str:
        per = ", ".join(
            f"gen{g} {n} ({t * 1000 / orders:.3f} ms/order)"
            for g, (n, t) in enumerate(zip(self.count, self.cpu, strict=True))
        )
        return f"GC collections: {per}"


def main(args: argparse.Namespace) -> None:
    print(f"machine: {benchlib.machine_info()}")
    env = benchlib.fresh_django(
        db_name=args.db_name, redis_url=args.redis_url or None, collectstatic=True
    )

    from django.test import Client

    session_key, csrf = setup(args)
    order = functools.partial(one_order, keep_cookies=not args.no_cookie_jar)
    client = Client(HTTP_HOST="127.0.0.1", enforce_csrf_checks=True)
    secret = env["SANDBOX_PAY_SECRET"]
    for _ in range(20):  # warm: imports, template loading, connections
        order(client, session_key=session_key, csrf=csrf, secret=secret)
    if not args.no_gc_freeze:
        # What config/wsgi.py does in every server process (config/lib/gcheap.py).
        from config.lib.gcheap import heap_freeze

        heap_freeze()

    # 1. the SQL of one order, per request (BEGIN/COMMIT/SAVEPOINT included; the
    # connection health check and Redis round trips are not SQL the ORM logs)
    captured: dict[str, Any] = {}
    order(client, session_key=session_key, csrf=csrf, secret=secret, queries=captured)
    total = checks = 0
    for name in ("checkout", "pay_page", "notify"):
        statements = captured[name].statements
        total += len(statements)
        checks += captured[name].health_checks
        print(
            f"\n{name}: {len(statements)} statements"
            f" (+ {captured[name].health_checks} connection health check)"
        )
        for sql in statements:
            print("   " + sql[:160])
    print(f"\none paid order: {total} statements (+ {checks} health checks)")

    # 2. wall time per step, and where the CPU went
    timings: dict[str, list[float]] = {"checkout": [], "pay_page": [], "notify": []}
    cpu: dict[str, list[float]] = {"checkout": [], "pay_page": [], "notify": []}
    backends = {"postgres": lambda: benchlib.pg_backends(args.db_name)}
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    with benchlib.CpuAccount(backends) as account, GcMeter() as collections:
        for _ in range(args.orders):
            order(
                client,
                session_key=session_key,
                csrf=csrf,
                secret=secret,
                timings=timings,
                cpu=cpu,
            )
    wall = time.perf_counter() - t0
    django_cpu = time.process_time() - cpu0
    benchlib.print_table(
        f"In-process, one client, {args.orders} orders: {args.orders / wall:.1f} orders/s, "
        f"Django process CPU {django_cpu * 1000 / args.orders:.2f} ms/order, "
        f"PostgreSQL backend CPU {account.seconds['postgres'] * 1000 / args.orders:.2f} ms/order, "
        f"wall {wall * 1000 / args.orders:.2f} ms/order; "
        f"{collections.summary(args.orders)}",
        ["step", "p50 ms", "p99 ms", "CPU p50 ms", "CPU mean ms"],
        [
            [
                name,
                statistics.median(v) * 1000,
                benchlib.percentile(v, 99) * 1000,
                statistics.median(cpu[name]) * 1000,
                statistics.fmean(cpu[name]) * 1000,
            ]
            for name, v in timings.items()
        ],
    )

    # 3. what single ORM calls cost here, for scale
    from django.db import connection

    from catalog.selectors import sku_get_on_sale
    from orders.models import Order

    def per_call(fn: Any, n: int = 500) -> tuple[float, float, float]:
        fn()
        c0, w0 = time.process_time(), time.perf_counter()
        with benchlib.CpuAccount(backends) as pg:
            for _ in range(n):
                fn()
        return (
            (time.process_time() - c0) * 1000 / n,
            pg.seconds["postgres"] * 1000 / n,
            (time.perf_counter() - w0) * 1000 / n,
        )

    def select_one() -> None:
        with connection.cursor() as cur:
            cur.execute("SELECT 1")

    def health_check() -> None:
        connection.is_usable()

    calls = {
        "cursor.execute('SELECT 1') (a round trip, no ORM)": select_one,
        "connection.is_usable() (CONN_HEALTH_CHECKS, per request)": health_check,
        "Order.objects.filter(number=...).first()": lambda: Order.objects.filter(
            number="none"
        ).first(),
        "catalog.selectors.sku_get_on_sale(code=...)": lambda: sku_get_on_sale(
            code=SKU
        ),
    }
    benchlib.print_table(
        "CPU per call: this process (Python) and the PostgreSQL backend",
        ["call", "CPU ms", "PostgreSQL CPU ms", "wall ms"],
        [[name, *per_call(fn)] for name, fn in calls.items()],
    )

    # 4. Python function calls per request (deterministic, unlike CPU time)
    counted: dict[str, list[int]] = {}
    for _ in range(20):
        order(client, session_key=session_key, csrf=csrf, secret=secret, calls=counted)
    benchlib.print_table(
        "Python function calls per request (Python and C functions, median of 20)",
        ["step", "calls"],
        [
            *[[name, statistics.median(v)] for name, v in counted.items()],
            ["one paid order", sum(statistics.median(v) for v in counted.values())],
        ],
    )

    # 5. cProfile over the same work, counting CPU time (not wall: the machine is shared)
    if args.skip_cprofile:
        return
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(args.orders):
        order(client, session_key=session_key, csrf=csrf, secret=secret)
    profiler.disable()
    if args.pstats:
        profiler.dump_stats(args.pstats)
    for sort in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(sort).print_stats(args.top)
        print(f"\ncProfile over {args.orders} orders, sorted by {sort}:")
        print(
            "\n".join(line for line in out.getvalue().splitlines() if line.strip())[
                :12000
            ]
        )


if __name__ == "__main__":
    options = parse_args()
    try:
        main(options)
    finally:
        if options.redis_url:  # drop the delivery-email tasks nobody will consume
            import redis

            r = redis.Redis.from_url(options.redis_url)
            r.delete(b"celery", *r.scan_iter(match="_kombu.binding*"))
            r.close()
