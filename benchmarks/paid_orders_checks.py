"""checkout_paid_orders.py's checks: the database agrees with what the clients were
told, the rush held, the stock and the Redis queue between phases.
"""

from __future__ import annotations

import datetime as dt
import io
import secrets
from typing import Any

import benchlib
import psycopg2


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
