"""Where a rush page's time goes, in-process: statements, CPU and a cProfile per page.

    .venv/bin/python benchmarks/profile_pages.py [--requests 500] [--top 25]

The pages a flash sale hits, through Django's WSGI handler and full middleware
stack (as gunicorn calls it, no HTTP), under the benchmark's production settings (DEBUG off, REDIS_URL set so the
cache is Redis, PostgreSQL):
- the product page `/p/<slug>/` and home `/`, anonymous;
- a sold-out checkout POST by a logged-in shopper (the rush's usual answer).
For each it prints the SQL statements of one request, the CPU ms per request of
this process (median wall too) and the PostgreSQL backend's CPU per request, then
a cProfile of each (CPU clock).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import secrets
import statistics
import time
from decimal import Decimal
from typing import Any

import benchlib

DB_NAME = "kaquan_bench_pprofile"
REDIS_URL = "redis://127.0.0.1:6379/12"
PRICE = Decimal("30.00")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--requests", type=int, default=500, help="requests per page")
    p.add_argument("--top", type=int, default=25, help="profile rows to print")
    p.add_argument("--redis-url", default=REDIS_URL)
    p.add_argument(
        "--db-name", default=DB_NAME, help="database to recreate (dropped first)"
    )
    p.add_argument("--skip-cprofile", action="store_true")
    p.add_argument("--sort", default="cumulative", help="cProfile order: tottime, ...")
    return p.parse_args()


def seed() -> dict[str, Any]:
    """Four platforms of four products; the measured product has four SKUs."""
    from django.conf import settings
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.backends.db import SessionStore

    from catalog.models import Platform, Product, Sku, ValidityRule
    from fulfillment.services import card_codes_import

    rule = ValidityRule.objects.create(name="30 天", duration_days=30)
    product = None
    for p in range(4):
        platform = Platform.objects.create(
            name=f"平台 {p}", slug=f"plat-{p}", account_rule="any"
        )
        for i in range(4):
            prod = Product.objects.create(
                platform=platform,
                name=f"会员 {p}-{i}",
                slug=f"prod-{p}-{i}",
                summary="月卡、季卡、年卡，付款后自动发货",
                usage_rules="登录后在会员中心兑换。\n每个账号限用一次。",
            )
            for j, name in enumerate(("月卡", "季卡", "年卡", "周卡")):
                sku = Sku.objects.create(
                    product=prod,
                    code=f"S-{p}-{i}-{j}",
                    name=name,
                    face_value=PRICE + 5,
                    price=PRICE,
                    validity_rule=rule,
                )
                if p == 0 and i == 0 and j < 3:
                    content = "\n".join(
                        secrets.token_hex(8).upper() for _ in range(200)
                    ).encode()
                    card_codes_import(
                        sku=sku, content=content, file_name="c.txt", actor=None
                    )
            product = product or prod
    user = get_user_model().objects.create(
        username="shopper", email="shopper@example.com", password=make_password(None)
    )
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    assert product is not None  # noqa: S101
    return {
        "product_path": f"/p/{product.slug}/",
        "sold_out_sku": "S-0-0-3",  # no codes
        "session_key": store.session_key,
        "csrf": secrets.token_hex(16),
    }


def main(args: argparse.Namespace) -> None:
    print(f"machine: {benchlib.machine_info()}")
    benchlib.fresh_django(
        db_name=args.db_name, redis_url=args.redis_url or None, collectstatic=True
    )
    from urllib.parse import urlencode

    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connection
    from django.test.client import RequestFactory
    from django.test.utils import CaptureQueriesContext

    seeded = seed()
    # The WSGI handler itself, as gunicorn calls it: the test Client would add its
    # own instrumentation (template signals, context copies) to every request.
    handler = WSGIHandler()
    factory = RequestFactory()
    shopper_cookie = f"sessionid={seeded['session_key']}; csrftoken={seeded['csrf']}"

    class Answer:
        status_code = 0

    def call(environ: dict[str, Any]) -> Answer:
        answer = Answer()

        def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
            answer.status_code = int(status.split()[0])

        body = handler(environ, start_response)
        b"".join(body)
        body.close()
        return answer

    def environ(path: str, **extra: Any) -> dict[str, Any]:
        env = factory._base_environ(PATH_INFO=path, SERVER_NAME="127.0.0.1", **extra)
        env["HTTP_HOST"] = "127.0.0.1"
        return env

    def product() -> Any:
        return call(environ(seeded["product_path"]))

    def home() -> Any:
        return call(environ("/"))

    def sold_out() -> Any:
        data = urlencode(
            {
                "sku": seeded["sold_out_sku"],
                "quantity": "1",
                "token": secrets.token_urlsafe(16),
            }
        ).encode()
        return call(
            environ(
                "/checkout/",
                REQUEST_METHOD="POST",
                CONTENT_TYPE="application/x-www-form-urlencoded",
                CONTENT_LENGTH=str(len(data)),
                HTTP_COOKIE=shopper_cookie,
                HTTP_X_CSRFTOKEN=seeded["csrf"],
                **{"wsgi.input": io.BytesIO(data)},
            )
        )

    pages = {
        "product page (anonymous)": (product, 200),
        "home (anonymous)": (home, 200),
        "sold-out checkout POST": (sold_out, 409),
    }
    rows = []
    for name, (fn, status) in pages.items():
        for _ in range(30):  # warm: imports, templates, connections, caches
            r = fn()
            if r.status_code != status:
                raise SystemExit(f"{name}: {r.status_code}, expected {status}")
        with CaptureQueriesContext(connection) as ctx:
            fn()
        statements = len(ctx.captured_queries)  # reset by the next request
        print(f"\n{name}: {statements} statements")
        for q in ctx.captured_queries:
            print("   " + q["sql"][:160])
        backends = {"postgres": lambda: benchlib.pg_backends(args.db_name)}
        walls = []
        cpu0 = time.process_time()
        with benchlib.CpuAccount(backends) as account:
            for _ in range(args.requests):
                w0 = time.perf_counter()
                fn()
                walls.append(time.perf_counter() - w0)
        cpu = (time.process_time() - cpu0) * 1000 / args.requests
        rows.append(
            [
                name,
                statements,
                cpu,
                account.seconds["postgres"] * 1000 / args.requests,
                statistics.median(walls) * 1000,
            ]
        )
    benchlib.print_table(
        f"In-process, one client, {args.requests} requests per page",
        ["page", "SQL", "Django CPU ms", "PostgreSQL CPU ms", "wall p50 ms"],
        rows,
    )
    if args.skip_cprofile:
        return
    for name, (fn, _status) in pages.items():
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        for _ in range(args.requests):
            fn()
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(args.sort).print_stats(args.top)
        calls = stats.total_calls / args.requests  # type: ignore[attr-defined]
        print(
            f"\ncProfile of {name}, {args.requests} requests, by {args.sort} CPU"
            f" ({calls:,.0f} Python function calls per request):"
        )
        print("\n".join(x for x in out.getvalue().splitlines() if x.strip()))


if __name__ == "__main__":
    main(parse_args())
