"""What the risk engine adds to a checkout, in-process: risk_assess + risk_checkout_confirm.

    .venv/bin/python benchmarks/risk_overhead.py [--checkouts 500] [--history 5000]
        [--rounds N] [--db-name NAME] [--redis-url URL] [--json]

Sets Django up against a fresh PostgreSQL database (DEBUG off, REDIS_URL set, as
profile_checkout.py does), loads a history of orders from a few hundred shoppers,
devices and addresses, then times, in one run, the engine's part of a checkout
(assess a checkout, confirm it with an order id) for four cases: 0 and 20 active
rules (a realistic mix of every kind, with block/allow lists of a few hundred
entries), each with Redis counters and with database counters. Prints ms per
checkout (median, p90, p99), SQL statements and the overhead of the 20 rules over
none. With 0 rules the engine still reads the rules version and records the
evaluation: that is the floor of its cost. `--rounds N` alternates the four cases
in N blocks each (the machine's load then drifts over all of them alike).
KAQUAN_APP_ROOT=<another checkout> measures that checkout's engine (an A/B).
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import secrets
import sys
import time
from decimal import Decimal
from typing import Any

import benchlib

DB_NAME = "kaquan_bench_risk"
REDIS_URL = "redis://127.0.0.1:6379/13"
# The redis-server's pid: its CPU is where the counters' Lua script runs.
REDIS_PID: list[int] = []
PRICE = Decimal("30.00")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkouts", type=int, default=500, help="timed per case")
    p.add_argument("--warmup", type=int, default=50, help="untimed per case")
    p.add_argument("--history", type=int, default=5000, help="orders already placed")
    p.add_argument("--redis-url", default=REDIS_URL)
    p.add_argument(
        "--db-name", default=DB_NAME, help="the benchmark database (recreated)"
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="1: each case in one go; N: the cases take turns in N blocks each",
    )
    p.add_argument("--json", action="store_true", help="also write results/*.json")
    return p.parse_args()


def _pools(n: int) -> dict[str, list[str]]:
    return {
        "device": [secrets.token_urlsafe(16) for _ in range(n)],
        "ip": [f"10.{i // 250}.{i % 250}.{(i * 7) % 250 + 1}" for i in range(n)],
        "recharge": [f"138{random.randrange(10**8):08d}" for _ in range(n)],
    }


def setup_data(args: argparse.Namespace) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from orders.models import Order, OrderLine

    (sku,) = benchlib.create_skus(["BENCH-RISK"], platform_slug="bench", price=PRICE)
    User = get_user_model()
    users = User.objects.bulk_create(
        [User(username=f"risk{i}", email=f"risk{i}@example.com") for i in range(300)]
    )
    User.objects.update(date_joined=timezone.now() - dt.timedelta(days=365))
    users = list(User.objects.all())
    pools = _pools(400)
    now = timezone.now()
    orders = Order.objects.bulk_create(
        [
            Order(
                user=random.choice(users),
                email="x@example.com",
                total_amount=PRICE,
                status=random.choices(
                    ["delivered", "paid", "cancelled", "pending"], [70, 10, 15, 5]
                )[0],
                ip_address=random.choice(pools["ip"]),
                device_id=random.choice(pools["device"]),
                expires_at=now + dt.timedelta(minutes=15),
            )
            for _ in range(args.history)
        ]
    )
    OrderLine.objects.bulk_create(
        [
            OrderLine(
                order=o,
                sku=sku,
                product_name="x",
                sku_name="x",
                recharge_account=random.choice(pools["recharge"]),
                quantity=1,
                unit_price=PRICE,
                amount=PRICE,
            )
            for o in orders
        ]
    )
    with connection.cursor() as cur:
        # Spread the history over two days, so windows hold part of it.
        cur.execute(
            "UPDATE orders_order SET created_at = now() - random() * interval '2 days'"
        )
        cur.execute("ANALYZE")
    return {"sku": sku, "users": users, "pools": pools, "order": orders[0]}


def create_rules(data: dict[str, Any]) -> None:
    """Twenty rules, every kind, and lists of a few hundred entries."""
    from django.utils import timezone

    from risk.cache import risk_rules_changed
    from risk.models import RiskListEntry, RiskRule

    K = RiskRule.Kind
    sku = data["sku"]
    specs: list[dict[str, Any]] = [
        {"kind": K.BLOCKLIST, "subject": "ip", "action": "block"},
        {"kind": K.BLOCKLIST, "subject": "email_domain", "action": "block"},
        {"kind": K.BLOCKLIST, "subject": "device", "action": "block"},
        {"kind": K.BLOCKLIST, "subject": "recharge_account", "action": "block"},
        {"kind": K.ALLOWLIST, "subject": "ip", "action": "allow", "priority": 1},
        {"kind": K.DISPOSABLE_EMAIL, "action": "captcha"},
        {
            "kind": K.VELOCITY_ORDERS,
            "subject": "device",
            "window_seconds": 600,
            "threshold": 10,
            "action": "captcha",
        },
        {
            "kind": K.VELOCITY_ORDERS,
            "subject": "device",
            "window_seconds": 3600,
            "threshold": 30,
            "action": "block",
        },
        {
            "kind": K.VELOCITY_ORDERS,
            "subject": "ip",
            "window_seconds": 600,
            "threshold": 20,
            "action": "captcha",
        },
        {
            "kind": K.VELOCITY_ORDERS,
            "subject": "ip",
            "window_seconds": 86400,
            "threshold": 100,
            "action": "block",
        },
        {
            "kind": K.VELOCITY_ORDERS,
            "subject": "account",
            "window_seconds": 3600,
            "threshold": 20,
            "action": "review",
        },
        {
            "kind": K.VELOCITY_AMOUNT,
            "subject": "account",
            "window_seconds": 86400,
            "threshold": 2000,
            "action": "review",
        },
        {
            "kind": K.VELOCITY_AMOUNT,
            "subject": "ip",
            "window_seconds": 86400,
            "threshold": 5000,
            "action": "block",
        },
        {
            "kind": K.VELOCITY_ORDERS,
            "subject": "recharge_account",
            "window_seconds": 86400,
            "threshold": 10,
            "action": "block",
            "scope": "sku",
            "sku": sku,
        },
        {
            "kind": K.SKU_LIMIT,
            "subject": "account",
            "window_seconds": 86400,
            "threshold": 50,
            "action": "block",
        },
        {
            "kind": K.SKU_LIMIT,
            "subject": "account",
            "threshold": 1000,
            "action": "review",
        },
        {"kind": K.ORDER_QUANTITY, "threshold": 20, "action": "block"},
        {
            "kind": K.NEW_ACCOUNT,
            "window_seconds": 86400,
            "threshold": 200,
            "action": "review",
        },
        {
            "kind": K.DISTINCT_RECHARGE_ACCOUNTS,
            "subject": "device",
            "window_seconds": 3600,
            "threshold": 5,
            "action": "review",
        },
        {
            "kind": K.UNPAID_ORDERS,
            "subject": "account",
            "threshold": 5,
            "action": "block",
        },
    ]
    RiskRule.objects.bulk_create(
        [RiskRule(name=f"rule {i}", **spec) for i, spec in enumerate(specs)]
    )
    # Rules that have run for a while: the Redis counters are complete for them.
    long_ago = timezone.now() - dt.timedelta(days=30)
    RiskRule.objects.update(updated_at=long_ago, counting_since=long_ago)
    entries = [
        RiskListEntry(
            list_kind="block", subject="ip", value=f"172.{i // 250}.{i % 250}.0/24"
        )
        for i in range(200)
    ]
    entries += [
        RiskListEntry(list_kind="block", subject="ip", value=f"192.168.{i}.{i}")
        for i in range(100)
    ]
    entries += [
        RiskListEntry(
            list_kind="block", subject="email_domain", value=f"spam{i}.example"
        )
        for i in range(200)
    ]
    entries += [
        RiskListEntry(
            list_kind="block", subject="device", value=secrets.token_urlsafe(16)
        )
        for _ in range(200)
    ]
    entries += [
        RiskListEntry(
            list_kind="block", subject="recharge_account", value=f"139{i:08d}"
        )
        for i in range(200)
    ]
    entries += [RiskListEntry(list_kind="allow", subject="ip", value="203.0.113.0/24")]
    RiskListEntry.objects.bulk_create(entries)
    risk_rules_changed()


def run_case(
    data: dict[str, Any], acc: dict[str, Any], *, n: int, warmup: int, db_name: str
) -> None:
    """Time n checkouts (after `warmup` untimed), adding to `acc`."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from risk.services import risk_assess, risk_checkout_confirm
    from risk.types import Signals, Stage

    users, pools, order_id = data["users"], data["pools"], data["order"].pk
    sku = data["sku"]

    def one() -> str:
        user = random.choice(users)
        signals = Signals(
            stage=Stage.CHECKOUT,
            now=timezone.now(),
            ip=random.choice(pools["ip"]),
            device=random.choice(pools["device"]),
            user_id=user.pk,
            account_created_at=user.date_joined,
            email=user.email,
            recharge_account=random.choice(pools["recharge"]),
            sku_id=sku.pk,
            platform_id=sku.product.platform_id,
            quantity=1,
            amount=PRICE,
        )
        assessment = risk_assess(signals)
        risk_checkout_confirm(assessment, order_id=order_id)
        return str(assessment.action)

    for _ in range(warmup):
        one()
    with CaptureQueriesContext(connection) as captured:
        one()
    times: list[float] = acc.setdefault("times", [])
    decisions: dict[str, int] = acc.setdefault("decisions", {})
    backends = {
        "postgres": lambda: benchlib.pg_backends(db_name),
        "redis": lambda: REDIS_PID,
    }
    with benchlib.CpuAccount(backends) as pg:
        cpu0 = time.process_time()
        for _ in range(n):
            t0 = time.perf_counter()
            action = one()
            times.append(time.perf_counter() - t0)
            decisions[action] = decisions.get(action, 0) + 1
        cpu = time.process_time() - cpu0
    acc["cpu"] = acc.get("cpu", 0.0) + cpu
    acc["pg"] = acc.get("pg", 0.0) + pg.seconds["postgres"]
    acc["redis"] = acc.get("redis", 0.0) + pg.seconds.get("redis", 0.0)
    acc["queries"] = len(captured.captured_queries)


def summary(acc: dict[str, Any]) -> dict[str, Any]:
    times = acc["times"]
    n = len(times)
    return {
        "median_ms": benchlib.median(times) * 1000,
        "p90_ms": benchlib.percentile(times, 90) * 1000,
        "p99_ms": benchlib.percentile(times, 99) * 1000,
        "cpu_ms": acc["cpu"] * 1000 / n,
        "pg_cpu_ms": acc["pg"] * 1000 / n,
        "redis_cpu_ms": acc["redis"] * 1000 / n,
        "queries": acc["queries"],
        "decisions": acc["decisions"],
    }


def _interleaved(args: argparse.Namespace, data: dict[str, Any]) -> dict[str, Any]:
    """--rounds N: every case runs N blocks of checkouts/N, the four cases taking
    turns (every other round in reverse order), so that a change in the
    machine's load falls on all of them alike. 0 rules: the twenty deactivated."""
    import redis
    from django.conf import settings

    from risk.cache import risk_rules_changed
    from risk.counters import EPOCH_KEY
    from risk.models import RiskRule

    create_rules(data)
    cases = [(rules, c) for c in ("redis", "db") for rules in (0, 20)]
    accs: dict[tuple[int, str], dict[str, Any]] = {case: {} for case in cases}
    redis.Redis.from_url(args.redis_url).set(EPOCH_KEY, 0)
    block = max(1, args.checkouts // args.rounds)
    for r in range(args.rounds):
        for rules, counters in cases if r % 2 == 0 else cases[::-1]:
            settings.RISK_COUNTERS_REDIS_URL = (
                args.redis_url if counters == "redis" else ""
            )
            RiskRule.objects.update(active=bool(rules))
            risk_rules_changed()
            run_case(
                data,
                accs[(rules, counters)],
                n=block,
                warmup=max(1, args.warmup // args.rounds),
                db_name=args.db_name,
            )
    return {f"{rules} rules, {c}": summary(accs[(rules, c)]) for rules, c in cases}


def main(args: argparse.Namespace) -> dict[str, Any]:
    print(f"machine: {benchlib.machine_info()}")
    benchlib.fresh_django(db_name=args.db_name, redis_url=args.redis_url)
    import redis

    REDIS_PID[:] = [
        int(redis.Redis.from_url(args.redis_url).info("server")["process_id"])
    ]
    import redis
    from django.conf import settings

    from risk.counters import EPOCH_KEY
    from risk.models import RiskRule

    benchlib.redis_purge_prefix(args.redis_url, "risk")
    data = setup_data(args)
    results: dict[str, Any] = {}
    for rules in (0, 20) if args.rounds == 1 else ():
        if rules:
            create_rules(data)
        if RiskRule.objects.filter(active=True).count() != rules:
            raise SystemExit(f"expected {rules} active rules")
        for counters in ("redis", "db"):
            settings.RISK_COUNTERS_REDIS_URL = (
                args.redis_url if counters == "redis" else ""
            )
            # Counters complete since long ago: the steady state of a running shop.
            redis.Redis.from_url(args.redis_url).set(EPOCH_KEY, 0)
            benchlib.wait_for_quiet()
            acc: dict[str, Any] = {}
            run_case(
                data, acc, n=args.checkouts, warmup=args.warmup, db_name=args.db_name
            )
            results[f"{rules} rules, {counters}"] = summary(acc)
    if args.rounds > 1:
        results = _interleaved(args, data)
    rows = [
        [
            name,
            r["median_ms"],
            r["p90_ms"],
            r["p99_ms"],
            r["cpu_ms"],
            r["pg_cpu_ms"],
            r["redis_cpu_ms"],
            r["queries"],
            str(r["decisions"]),
        ]
        for name, r in results.items()
    ]
    benchlib.print_table(
        f"risk_assess + risk_checkout_confirm, ms per checkout ({args.checkouts} each, {args.history} orders of history)",
        [
            "case",
            "median",
            "p90",
            "p99",
            "CPU",
            "PG CPU",
            "Redis CPU",
            "SQL",
            "decisions",
        ],
        rows,
        left=1,
    )
    overhead = {
        c: results[f"20 rules, {c}"]["median_ms"]
        - results[f"0 rules, {c}"]["median_ms"]
        for c in ("redis", "db")
    }
    cpu_overhead = {
        c: sum(
            results[f"20 rules, {c}"][k] - results[f"0 rules, {c}"][k]
            for k in ("cpu_ms", "pg_cpu_ms", "redis_cpu_ms")
        )
        for c in ("redis", "db")
    }
    print(
        "\noverhead of 20 rules over none, median wall: "
        + ", ".join(f"{c} {v:.2f} ms" for c, v in overhead.items())
        + "; CPU (Django + PostgreSQL + redis-server): "
        + ", ".join(f"{c} {v:.2f} ms" for c, v in cpu_overhead.items())
    )
    print(
        f"whole engine with 20 rules and Redis counters: {results['20 rules, redis']['median_ms']:.2f} ms per checkout"
    )
    benchlib.redis_purge_prefix(args.redis_url, "risk")
    out = {
        "args": vars(args),
        "results": results,
        "overhead_ms": overhead,
        "cpu_overhead_ms": cpu_overhead,
    }
    if args.json:
        path = benchlib.write_json("risk_overhead", out)
        print(f"wrote {path}")
    return out


if __name__ == "__main__":
    random.seed(7)
    sys.exit(main(parse_args()) and 0)
