"""EXPLAIN (ANALYZE, BUFFERS) of the claim query on a realistic code pool.

    .venv/bin/python benchmarks/claim_plan.py [--codes 1000000] [--available 30000]

1. Recreate kaquan_bench_plan and migrate (the real schema: partial claim index,
   per-table autovacuum settings).
2. Load one dominant SKU with --codes codes of which all but --available are sold,
   plus --other-skus small SKUs, with COPY (ciphertext-like text: the claim never
   decrypts), then VACUUM ANALYZE: the steady state of a queue table.
3. Capture the SQL the app itself sends (fulfillment.locks.card_codes_claimable_lock_for_update
   and the stock count of orders.selectors.offer_get) and EXPLAIN (ANALYZE, BUFFERS)
   it inside a transaction that is rolled back.
4. Sell the next --burst codes in one UPDATE (dead entries at the head of the claim
   index), EXPLAIN the claim again before vacuum, then after VACUUM.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import secrets
import time
from decimal import Decimal
from typing import Any

import benchlib

DB_NAME = "kaquan_bench_plan"
MAIN_SKU = "PLAN-MAIN"
COPY_CHUNK = 100_000


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--codes", type=int, default=1_000_000, help="codes of the dominant SKU"
    )
    p.add_argument(
        "--available", type=int, default=30_000, help="of which still available"
    )
    p.add_argument("--other-skus", type=int, default=3, help="small SKUs beside it")
    p.add_argument(
        "--other-codes", type=int, default=20_000, help="available codes per small SKU"
    )
    p.add_argument(
        "--burst", type=int, default=20_000, help="codes sold in one go for step 4"
    )
    p.add_argument(
        "--json", action="store_true", help="also write benchmarks/results/*.json"
    )
    return p.parse_args()


def copy_codes(
    cur: Any, *, sku_id: int, batch_id: int, count: int, sold: int, line_id: int
) -> float:
    """COPY `count` codes, the first `sold` of them sold on `line_id`; returns seconds."""
    now = dt.datetime.now(tz=dt.UTC).isoformat()
    columns = (
        "sku_id",
        "batch_id",
        "ciphertext",
        "key_id",
        "fingerprint",
        "hint",
        "status",
        "order_line_id",
        "sold_at",
        "created_at",
    )
    t0 = time.perf_counter()
    for start in range(0, count, COPY_CHUNK):
        buf = io.StringIO()
        for i in range(start, min(count, start + COPY_CHUNK)):
            is_sold = i < sold
            buf.write(
                f"{sku_id}\t{batch_id}\t{secrets.token_urlsafe(75)}\tbench\t{secrets.token_hex(32)}\tAB****YZ\t"
                f"{'sold' if is_sold else 'available'}\t{line_id if is_sold else chr(92) + 'N'}\t"
                f"{now if is_sold else chr(92) + 'N'}\t{now}\n"
            )
        buf.seek(0)
        cur.copy_from(buf, "fulfillment_cardcode", columns=columns)
    return time.perf_counter() - t0


def explain(sql: str, params: Any = None) -> tuple[str, float]:
    """EXPLAIN (ANALYZE, BUFFERS) inside a transaction that is rolled back."""
    from django.db import connection, transaction

    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            plan = "\n".join(row[0] for row in cur.fetchall())
        transaction.set_rollback(True)
    execution = float(plan.rsplit("Execution Time: ", 1)[1].split(" ms")[0])
    return plan, execution


def captured_sql(fn: Any) -> list[tuple[str, Any]]:
    """The statements `fn` sends, as (sql, params), inside a rolled-back transaction."""
    from django.db import connection, transaction

    statements: list[tuple[str, Any]] = []

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with transaction.atomic(), connection.execute_wrapper(wrapper):
        fn()
        transaction.set_rollback(True)
    return statements


def mogrify(statement: tuple[str, Any]) -> str:
    from django.db import connection

    with connection.cursor() as cur:
        return cur.cursor.mogrify(*statement).decode()


def main() -> None:
    args = parse_args()
    benchlib.fresh_django(db_name=DB_NAME)

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from fulfillment.locks import card_codes_claimable_lock_for_update
    from fulfillment.models import CodeBatch
    from orders.models import Order, OrderLine
    from orders.selectors import offer_get as sku_offer_get

    price = Decimal("30.00")
    skus = benchlib.create_skus(
        [MAIN_SKU, *(f"PLAN-OTHER-{i}" for i in range(1, 1 + args.other_skus))],
        platform_slug="plan",
        price=price,
    )
    user = get_user_model().objects.create(username="buyer", email="buyer@example.com")
    order = Order.objects.create(
        user=user, email=user.email, total_amount=price, expires_at=timezone.now()
    )
    line = OrderLine.objects.create(
        order=order,
        sku=skus[0],
        product_name="x",
        sku_name="x",
        quantity=1,
        unit_price=price,
        amount=price,
    )

    loads = []
    with connection.cursor() as cur:
        raw = cur.cursor  # psycopg2 cursor for copy_from
        for i, sku in enumerate(skus):
            batch = CodeBatch.objects.create(sku=sku, note="claim_plan")
            count = args.codes if i == 0 else args.other_codes
            sold = args.codes - args.available if i == 0 else 0
            seconds = copy_codes(
                raw,
                sku_id=sku.id,
                batch_id=batch.id,
                count=count,
                sold=sold,
                line_id=line.id,
            )
            loads.append((sku.code, count, sold, seconds))
    with connection.cursor() as cur:
        t0 = time.perf_counter()
        cur.execute("VACUUM ANALYZE fulfillment_cardcode")
        vacuum_s = time.perf_counter() - t0
        cur.execute(
            "SELECT pg_size_pretty(pg_relation_size('cardcode_claim_idx')), pg_size_pretty(pg_relation_size('fulfillment_cardcode'))"
        )
        claim_idx_size, table_size = cur.fetchone()
        cur.execute(
            "SELECT reloptions FROM pg_class WHERE relname = 'fulfillment_cardcode'"
        )
        reloptions = cur.fetchone()[0]
    benchlib.print_table(
        "Pool loaded with COPY",
        ["sku", "codes", "sold", "available", "COPY s", "rows/s"],
        [[c, n, s, n - s, secs, n / secs] for c, n, s, secs in loads],
    )
    print(
        f"VACUUM ANALYZE {vacuum_s:.1f} s; table {table_size}, cardcode_claim_idx {claim_idx_size}; reloptions {reloptions}"
    )

    main_sku = skus[0]
    now = timezone.now()
    claim = captured_sql(
        lambda: card_codes_claimable_lock_for_update(
            sku_id=main_sku.id, quantity=1, now=now
        )
    )
    claim5 = captured_sql(
        lambda: card_codes_claimable_lock_for_update(
            sku_id=main_sku.id, quantity=5, now=now
        )
    )
    claim_other = captured_sql(
        lambda: card_codes_claimable_lock_for_update(
            sku_id=skus[-1].id, quantity=1, now=now
        )
    )
    count_sql = [
        s
        for s in captured_sql(lambda: sku_offer_get(code=MAIN_SKU, now=now))
        if "COUNT(" in s[0]
    ]

    results: dict[str, Any] = {
        "loads": loads,
        "claim_idx_size": claim_idx_size,
        "reloptions": reloptions,
        "plans": {},
    }

    def show(name: str, statement: tuple[str, Any]) -> None:
        plan, ms = explain(*statement)
        uses_index = "cardcode_claim_idx" in plan
        results["plans"][name] = {
            "sql": connection.ops.compose_sql(*statement)
            if hasattr(connection.ops, "compose_sql")
            else statement[0],
            "plan": plan,
            "execution_ms": ms,
            "uses_claim_idx": uses_index,
        }
        print(f"\n=== {name}: {ms:.3f} ms, cardcode_claim_idx used: {uses_index}")
        print(plan)

    print("\nThe claim query as the app sends it:")
    print(mogrify(claim[0]))
    show(
        f"claim 1 code, dominant SKU ({args.codes:,} codes, {args.available:,} available), after VACUUM",
        claim[0],
    )
    show("claim 5 codes, dominant SKU", claim5[0])
    show(f"claim 1 code, small SKU ({args.other_codes:,} available)", claim_other[0])
    if count_sql:
        show(
            "stock count of catalog.selectors (product page, checkout confirmation page)",
            count_sql[0],
        )

    # 4. a burst of sales leaves dead entries at the head of the claim index
    with connection.cursor() as cur:
        cur.execute(
            """
            UPDATE fulfillment_cardcode SET status = 'sold', order_line_id = %s, sold_at = now()
            WHERE id IN (SELECT id FROM fulfillment_cardcode WHERE sku_id = %s AND status = 'available'
                         ORDER BY expires_at, id LIMIT %s)
            """,
            [line.id, main_sku.id, args.burst],
        )
        cur.execute("SELECT pg_stat_force_next_flush()")  # PostgreSQL 15+
        cur.execute(
            "SELECT n_dead_tup, last_autovacuum FROM pg_stat_user_tables WHERE relname = 'fulfillment_cardcode'"
        )
        dead, last_autovacuum = cur.fetchone()
    print(
        f"\nsold {args.burst:,} more codes in one UPDATE; n_dead_tup={dead} last_autovacuum={last_autovacuum}"
    )
    show(
        f"claim 1 code right after selling {args.burst:,} more (first scan, before vacuum)",
        claim[0],
    )
    show(
        "claim 1 code again (dead entries now marked killed by the first scan)",
        claim[0],
    )
    notices = connection.connection.notices
    del notices[:]
    with connection.cursor() as cur:
        cur.execute("VACUUM (VERBOSE, ANALYZE) fulfillment_cardcode")
    bypass = [n.strip() for n in notices if "index scan" in n]
    results["vacuum_index_scan"] = bypass
    print("\nVACUUM: " + " | ".join(bypass))
    show("claim 1 code after VACUUM", claim[0])
    with connection.cursor() as cur:
        # PostgreSQL skips index vacuuming when under 2% of the table's pages hold dead
        # tuples; on a big, mostly sold table the claim index head keeps those entries.
        cur.execute("VACUUM (INDEX_CLEANUP ON) fulfillment_cardcode")
    show("claim 1 code after VACUUM (INDEX_CLEANUP ON)", claim[0])

    if args.json:
        print(f"\nwrote {benchlib.write_json('claim_plan', results)}")
    if not all(
        p["uses_claim_idx"]
        for name, p in results["plans"].items()
        if name.startswith("claim")
    ):
        raise SystemExit("a claim plan does not use cardcode_claim_idx")


if __name__ == "__main__":
    main()
