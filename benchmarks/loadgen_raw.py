"""loadgen.py's `raw` mode: the same SQL work as the app's paid order with psycopg2,
one connection per client thread (the same-run baseline).
"""

from __future__ import annotations

import json
import secrets
import time
from decimal import Decimal
from typing import Any

import benchlib
import psycopg2
from loadgen_common import Budget, Tally, _run_threads

# The raw baseline: the statements the app's checkout and notify need, nothing else.
CLAIM = """
SELECT id FROM fulfillment_cardcode
WHERE sku_id = %(sku)s AND status = 'available' AND (expires_at IS NULL OR expires_at > now())
ORDER BY expires_at, id LIMIT 1 FOR UPDATE SKIP LOCKED
"""
INSERT_ORDER = """
INSERT INTO orders_order (number, user_id, email, status, total_amount, paid_amount,
    refunded_amount, currency, client_token, ip_address, device_id, partnered, created_at,
    updated_at, expires_at)
VALUES (%(number)s, %(user)s, %(email)s, 'pending', %(price)s, 0, 0, 'CNY', %(token)s,
    '127.0.0.1', '', false, now(), now(), now() + interval '15 minutes')
RETURNING id
"""
INSERT_LINE = """
INSERT INTO orders_orderline (order_id, sku_id, delivery, product_name, sku_name,
    validity_text, redeem_instructions, recharge_account, quantity, unit_price, amount,
    discount_amount, refunded_amount, status, status_reason, updated_at)
VALUES (%(order)s, %(sku)s, 'card_code', 'Bench product', 'Bench SKU', '', '', '', 1,
    %(price)s, %(price)s, 0, 0, 'reserved', '', now())
RETURNING id
"""
RESERVE = """
UPDATE fulfillment_cardcode SET status = 'reserved', order_line_id = %(line)s, reserved_at = now()
WHERE id = %(code)s AND status = 'available'
"""
INSERT_EVENT = """
INSERT INTO orders_orderevent (order_id, kind, actor_id, detail, created_at)
VALUES (%(order)s, %(kind)s, %(actor)s, %(detail)s, now())
"""
INSERT_TRADE = """
INSERT INTO orders_sandboxtrade (token, trade_no, out_trade_no, subject, total_amount, notify_url,
    return_url, status, refunded_amount, refund_nos, notify_status, created_at, updated_at)
VALUES (%(token)s, %(trade_no)s, %(number)s, 'Bench SKU × 1', %(price)s,
    'http://127.0.0.1/payments/notify/sandbox/', 'http://127.0.0.1/orders/', 'waiting', 0, '[]',
    '', now(), now())
"""
SELECT_TRADE = "SELECT id, out_trade_no, trade_no, total_amount, status FROM orders_sandboxtrade WHERE token = %(token)s"
INSERT_NOTIFY = """
INSERT INTO orders_paymentnotify (gateway, payload, out_trade_no, trade_no, notify_id, outcome,
    message, remote_addr, body_sha256, created_at)
VALUES ('sandbox', %(payload)s, %(number)s, %(trade_no)s, %(notify_id)s, 'received', '',
    '127.0.0.1', '', now())
RETURNING id
"""
LOCK_ORDER = "SELECT id, status, total_amount FROM orders_order WHERE number = %(number)s FOR UPDATE"
INSERT_PAYMENT = """
INSERT INTO orders_payment (order_id, gateway, trade_no, amount, currency, status, created_at)
VALUES (%(order)s, 'sandbox', %(trade_no)s, %(price)s, 'CNY', 'succeeded', now())
"""
MARK_PAID = """
UPDATE orders_order SET status = 'paid', paid_amount = paid_amount + %(price)s, paid_at = now(),
    updated_at = now() WHERE id = %(order)s
"""
MARK_SOLD = """
UPDATE fulfillment_cardcode SET status = 'sold', sold_at = now()
WHERE order_line_id = %(line)s AND status = 'reserved'
"""
MARK_LINE_DELIVERED = """
UPDATE orders_orderline SET status = 'delivered', delivered_at = now(), updated_at = now()
WHERE id = %(line)s
"""
INSERT_EMAIL = """
INSERT INTO orders_orderemail (order_id, kind, "to", status, attempts, last_error, language,
    created_at)
VALUES (%(order)s, 'delivered', %(email)s, 'pending', 0, '', '', now())
"""
MARK_DELIVERED = """
UPDATE orders_order SET status = 'delivered', delivered_at = now(), updated_at = now()
WHERE id = %(order)s
"""
FINISH_NOTIFY = "UPDATE orders_paymentnotify SET outcome = 'paid', order_id = %(order)s WHERE id = %(notify)s"

RAW_ROUND_TRIPS = 22  # per raw order, BEGIN and COMMIT included (see raw_order)


def raw_order(cur: Any, *, sku: int, user: int, price: str) -> str:
    """One order through the SQL the app runs for it (autocommit connection, explicit
    transactions where the app has them: 22 round trips). Returns the outcome."""
    number = "KQ" + secrets.token_hex(9).upper()
    email = f"raw{user}@example.com"
    # 1. checkout: claim, order, line, reserve, event (one transaction)
    cur.execute("BEGIN")
    cur.execute(CLAIM, {"sku": sku})
    row = cur.fetchone()
    if row is None:
        cur.execute("ROLLBACK")
        return "sold_out"
    code_id = row[0]
    cur.execute(
        INSERT_ORDER,
        {
            "number": number,
            "user": user,
            "email": email,
            "price": price,
            "token": secrets.token_urlsafe(16),
        },
    )
    order_id = cur.fetchone()[0]
    cur.execute(INSERT_LINE, {"order": order_id, "sku": sku, "price": price})
    line_id = cur.fetchone()[0]
    cur.execute(RESERVE, {"line": line_id, "code": code_id})
    cur.execute(
        INSERT_EVENT,
        {
            "order": order_id,
            "kind": "placed",
            "actor": user,
            "detail": '{"quantity": 1}',
        },
    )
    cur.execute("COMMIT")
    # 2. the gateway's trade (autocommit in the app too), then the pay page reads it
    token = secrets.token_urlsafe(24)
    trade_no = "SBX" + secrets.token_hex(12).upper()
    cur.execute(
        INSERT_TRADE,
        {"token": token, "trade_no": trade_no, "number": number, "price": price},
    )
    cur.execute(SELECT_TRADE, {"token": token})
    cur.fetchone()
    # 3. the notify: recorded first (autocommit), then applied under the order lock
    payload = json.dumps(
        {"out_trade_no": number, "trade_no": trade_no, "total_amount": price}
    )
    cur.execute(
        INSERT_NOTIFY,
        {
            "payload": payload,
            "number": number,
            "trade_no": trade_no,
            "notify_id": secrets.token_hex(16),
        },
    )
    notify_id = cur.fetchone()[0]
    cur.execute("BEGIN")
    cur.execute(LOCK_ORDER, {"number": number})
    cur.fetchone()
    cur.execute(
        INSERT_PAYMENT, {"order": order_id, "trade_no": trade_no, "price": price}
    )
    cur.execute(MARK_PAID, {"order": order_id, "price": price})
    cur.execute(
        INSERT_EVENT, {"order": order_id, "kind": "paid", "actor": None, "detail": "{}"}
    )
    cur.execute(MARK_SOLD, {"line": line_id})
    cur.execute(MARK_LINE_DELIVERED, {"line": line_id})
    cur.execute(
        INSERT_EVENT,
        {"order": order_id, "kind": "delivered", "actor": None, "detail": "{}"},
    )
    cur.execute(INSERT_EMAIL, {"order": order_id, "email": email})
    cur.execute(MARK_DELIVERED, {"order": order_id})
    cur.execute("COMMIT")
    cur.execute(FINISH_NOTIFY, {"order": order_id, "notify": notify_id})
    return "paid"


def run_raw(spec: dict[str, Any], tally: Tally) -> None:
    budget = Budget(limit=spec["max_orders"], seconds=spec["duration"])
    price = str(Decimal(spec["price"]))

    def client(user: int) -> None:
        conn = psycopg2.connect(spec["dsn"])
        conn.autocommit = True
        # This connection's backend exits with it: read its CPU time before closing.
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            backend = cur.fetchone()[0]
        cpu0 = benchlib.proc_cpu_seconds(backend) or 0.0
        try:
            with conn.cursor() as cur:
                while budget.take():
                    t0 = time.perf_counter()
                    try:
                        outcome = raw_order(
                            cur, sku=spec["sku_id"], user=user, price=price
                        )
                    except psycopg2.Error as exc:
                        if not conn.closed:
                            cur.execute("ROLLBACK")
                        tally.add("db_error", error=repr(exc))
                        continue
                    latency = time.perf_counter() - t0 if outcome == "paid" else None
                    tally.add(outcome, latency=latency)
        finally:
            cpu1 = benchlib.proc_cpu_seconds(backend)
            with tally.lock:
                tally.backend_cpu += (cpu1 or cpu0) - cpu0
            conn.close()

    _run_threads([(client, (user,)) for user in spec["user_ids"]])
