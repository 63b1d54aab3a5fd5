"""Partner API card-code orders per second against gunicorn, beside the storefront.

    .venv/bin/python benchmarks/partner_api.py [--duration 20] [--json] [--quick]

1. Recreate the database (kaquan_bench_partner), migrate, collectstatic, seed the
   storefront's SKUs and shoppers (checkout_paid_orders.seed) and a partner SKU
   whose codes go through the real import; `partner_provision` (create_partner's
   service) makes one API partner per concurrency run, each with a balance that
   covers every order it can place.
2. Start `gunicorn config.wsgi -w 4 -k sync` (DEBUG off, CONN_MAX_AGE=600, Redis).
3. For each concurrency (1, 8, 32): N client threads, one keep-alive httpx client
   each, POST signed /api/v1/orders (a new out_trade_no per order, quantity 1)
   until the deadline; then the storefront's paid-order loop
   (checkout_paid_orders.loadgen, mode app) at the same concurrency.
4. After each partner run the database is checked: partner orders == 201 answers
   == delivered orders == balance debits, the balance is what it started at less
   what was paid, no code sold twice.
Figures go to docs/PERFORMANCE.md (the lead runs this on a quiet machine;
`--quick` is a seconds-long smoke that the script still works).
"""

from __future__ import annotations

import argparse
import json
import secrets
import threading
import time
from decimal import Decimal
from typing import Any

import benchlib
import checkout_paid_orders as checkout
import httpx

DB_NAME = "kaquan_bench_partner"
SKU_API = "BENCH-API"
PRICE = Decimal("30.00")
REQUEST_TIMEOUT = 15.0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per run")
    p.add_argument("--codes", type=int, default=40000, help="codes for each path")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--port", type=int, default=0, help="0: a free port")
    p.add_argument("--redis-url", default=checkout.DEFAULT_REDIS_URL)
    p.add_argument("--skip-storefront", action="store_true")
    p.add_argument("--quick", action="store_true", help="1,8 clients, 2 s, few codes")
    p.add_argument(
        "--json", action="store_true", help="write benchmarks/results/*.json"
    )
    args = p.parse_args()
    args.port = args.port or benchlib.free_port()
    if args.quick:
        args.concurrency, args.duration, args.codes = "1,8", 2.0, 2000
    return args


def seed_partners(*, count: int, codes: int) -> tuple[int, list[tuple[str, str, int]]]:
    """The partner SKU and its codes; (key_id, secret, account id) per run."""
    from catalog.models import Platform, Product, Sku
    from distribution.partners.provision import partner_provision
    from fulfillment.services import card_codes_import

    platform = Platform.objects.get(slug="bench")
    product = Product.objects.create(
        platform=platform, name="Bench API", slug="bench-api"
    )
    sku = Sku.objects.create(
        product=product, code=SKU_API, name="月卡", face_value=PRICE, price=PRICE
    )
    card_codes_import(
        sku=sku,
        content=checkout.codes_file(codes),
        file_name="api.txt",
        actor=None,
        cost_price=Decimal("20.00"),
    )
    partners = []
    for n in range(count):
        made = partner_provision(
            email=f"partner{n}@bench.example", balance=PRICE * codes
        )
        partners.append((made.key.key_id, made.secret, made.account.pk))
    return sku.pk, partners


def run_partner(
    *, port: int, key_id: str, secret: str, clients: int, duration: float
) -> dict[str, Any]:
    """`clients` threads placing signed orders until the deadline."""
    from distribution.partners.signing import request_sign

    path = "/api/v1/orders"
    url = f"http://127.0.0.1:{port}{path}"
    deadline = time.monotonic() + duration
    lock = threading.Lock()
    outcomes: dict[str, int] = {}
    latencies: list[float] = []
    errors: list[str] = []

    def client(n: int) -> None:
        with httpx.Client(timeout=REQUEST_TIMEOUT) as http:
            i = 0
            while time.monotonic() < deadline:
                i += 1
                body = json.dumps(
                    {"out_trade_no": f"B{n}-{i}", "sku": SKU_API, "quantity": 1}
                ).encode()
                stamp, nonce = str(int(time.time())), secrets.token_hex(12)
                headers = {
                    "Content-Type": "application/json",
                    "X-Api-Key": key_id,
                    "X-Timestamp": stamp,
                    "X-Nonce": nonce,
                    "X-Signature": request_sign(
                        secret=secret,
                        method="POST",
                        path=path,
                        timestamp=stamp,
                        nonce=nonce,
                        body=body,
                    ),
                }
                t0 = time.perf_counter()
                try:
                    response = http.post(url, content=body, headers=headers)
                    outcome = str(response.status_code)
                    if response.status_code != 201 and len(errors) < 5:
                        errors.append(response.text[:200])
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                elapsed = time.perf_counter() - t0
                with lock:
                    outcomes[outcome] = outcomes.get(outcome, 0) + 1
                    latencies.append(elapsed)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + REQUEST_TIMEOUT + 5)
    elapsed = time.perf_counter() - started
    paid = outcomes.get("201", 0)
    return {
        "clients": clients,
        "paid": paid,
        "elapsed_s": elapsed,
        "paid_per_s": paid / elapsed,
        "outcomes": outcomes,
        "p50_ms": benchlib.percentile(latencies, 50) * 1000 if latencies else None,
        "p99_ms": benchlib.percentile(latencies, 99) * 1000 if latencies else None,
        "first_errors": errors,
    }


def verify_partner(*, account_id: int, expected: int, start: Decimal) -> dict[str, Any]:
    """Partner orders == 201s == delivered == debits; the balance adds up; codes sold once."""
    from django.db import connection
    from django.db.models import Count

    from distribution.models import PartnerBalanceEntry, PartnerOrder
    from distribution.partners.balance import balance_of
    from fulfillment.models import CardCode
    from orders.models import Order

    connection.close()
    problems = []
    orders = PartnerOrder.objects.filter(account_id=account_id).count()
    delivered = Order.objects.filter(
        partner_order__account_id=account_id, status=Order.Status.DELIVERED
    ).count()
    debits = PartnerBalanceEntry.objects.filter(
        account_id=account_id, kind="debit"
    ).count()
    if not orders == delivered == debits == expected:
        problems.append(
            f"orders {orders}, delivered {delivered}, debits {debits}, 201s {expected}"
        )
    balance = balance_of(account_id=account_id)
    if balance != start - PRICE * expected:
        problems.append(f"balance {balance} != {start} - {PRICE} x {expected}")
    twice = (
        CardCode.objects.filter(order_line__isnull=False)
        .values("order_line")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    if twice:
        problems.append(f"{twice} lines with more than one code")
    return {"ok": not problems, "problems": problems}


def main() -> None:
    args = parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    redis_url = args.redis_url or None
    print(f"machine: {benchlib.machine_info()}")
    if redis_url:
        checkout.redis_purge(redis_url)
    checkout.DB_NAME = DB_NAME  # its loadgen and checks read this module global
    env = benchlib.fresh_django(
        db_name=DB_NAME, redis_url=redis_url, collectstatic=True
    )
    # Throughput, not the per-key limit (600/m by default: a partner that
    # needs more is given more), is what this measures.
    env["PARTNER_API_RATE_LIMIT"] = "1000000/m"
    seeded = checkout.seed(
        codes=args.codes,
        raw_codes=1,
        rush_codes=1,
        shoppers=4 + sum(concurrencies),
        rush_shoppers=0,
    )
    _sku_id, partners = seed_partners(count=len(concurrencies) + 1, codes=args.codes)
    benchlib.django_close_connections()

    gunicorn = benchlib.Gunicorn(
        env=env,
        port=args.port,
        workers=args.workers,
        worker_class="sync",
        log_path=benchlib.RESULTS / "gunicorn-partner-api.log",
    )
    report: dict[str, Any] = {"args": vars(args), "partner": [], "storefront": []}
    sessions = list(seeded["sessions"])
    gunicorn.start()
    try:
        key_id, secret, _account = partners[0]
        warm = run_partner(
            port=args.port, key_id=key_id, secret=secret, clients=2, duration=2
        )
        print(f"warm-up: {warm['outcomes']}")
        for c, (key_id, secret, account_id) in zip(
            concurrencies, partners[1:], strict=False
        ):
            benchlib.wait_for_quiet()
            result = run_partner(
                port=args.port,
                key_id=key_id,
                secret=secret,
                clients=c,
                duration=args.duration,
            )
            result["verify"] = verify_partner(
                account_id=account_id, expected=result["paid"], start=PRICE * args.codes
            )
            benchlib.django_close_connections()
            report["partner"].append(result)
            print(
                f"partner API c={c}: {result['paid_per_s']:.1f} orders/s, p50 "
                f"{result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, outcomes "
                f"{result['outcomes']}, verify {result['verify']}"
            )
            for err in result["first_errors"][:3]:
                print(f"   error: {err}")
            if args.skip_storefront:
                continue
            spec = {
                "port": args.port,
                "sku": checkout.SKU_APP,
                "price": str(checkout.PRICE),
                "secret": env["SANDBOX_PAY_SECRET"],
                "mode": "app",
                "sessions": sessions[:c],
                "duration": args.duration,
                "max_orders": 100000,
            }
            sessions = sessions[c:]
            shop = checkout.loadgen(spec, server_pid=gunicorn.pid)
            report["storefront"].append(shop)
            print(
                f"storefront c={c}: {shop['paid_per_s']:.1f} paid orders/s, outcomes {shop['outcomes']}"
            )
    finally:
        gunicorn.stop()
        if redis_url:
            checkout.redis_purge(redis_url)
    rows = []
    for api_run, shop in zip(
        report["partner"],
        report["storefront"] or [None] * len(report["partner"]),
        strict=False,
    ):
        rows.append(
            [
                api_run["clients"],
                f"{api_run['paid_per_s']:.1f}",
                f"{api_run['p99_ms']:.1f}",
                f"{shop['paid_per_s']:.1f}" if shop else "-",
            ]
        )
    benchlib.print_table(
        "Partner API vs storefront (card codes, quantity 1)",
        ["clients", "partner orders/s", "partner p99 ms", "storefront paid/s"],
        rows,
    )
    if args.json:
        print(f"wrote {benchlib.write_json('partner_api', report)}")
    if not all(r["verify"]["ok"] for r in report["partner"]):
        raise SystemExit("verification failed")


if __name__ == "__main__":
    main()
