"""The paid path's plans when every prepared statement uses its generic plan.

    .venv/bin/python benchmarks/prepared_plans.py [--db-name kaquan_bench_plans]

With `plan_cache_mode = auto`, PostgreSQL may switch a prepared statement to
its generic plan (one made without the parameters' values) after five runs,
when that plan looks no dearer than the custom ones. This runs the orders of
profile_checkout.py with `force_generic_plan` on the app's connection and
auto_explain sending each statement's plan to the client, then prints the
plans of one order (after the warm-up): an index that a generic plan cannot use
(a partial index matched against a parameter) shows as a Seq Scan, a Sort or a
BitmapAnd where the custom plan had an Index Scan.
"""

from __future__ import annotations

import argparse
from collections import deque
from typing import Any

import benchlib
import profile_checkout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--db-name", default="kaquan_bench_plans")
    p.add_argument("--redis-url", default=profile_checkout.REDIS_URL)
    p.add_argument("--orders", type=int, default=10, help="warm-up orders")
    p.add_argument("--codes", type=int, default=30000)
    args = p.parse_args()
    env = benchlib.fresh_django(
        db_name=args.db_name, redis_url=args.redis_url or None, collectstatic=True
    )
    from django.db import connection
    from django.db.backends.signals import connection_created
    from django.test import Client

    def generic(sender: Any, connection: Any, **kwargs: Any) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SET plan_cache_mode = force_generic_plan;"
                " LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0;"
                " SET client_min_messages = log"
            )

    connection_created.connect(generic)
    connection.close()
    session_key, csrf = profile_checkout.setup(args)
    client = Client(HTTP_HOST="127.0.0.1", enforce_csrf_checks=True)
    secret = env["SANDBOX_PAY_SECRET"]
    for _ in range(args.orders):
        profile_checkout.one_order(
            client, session_key=session_key, csrf=csrf, secret=secret
        )
    raw = connection.connection
    raw.notices = deque(maxlen=1000)  # a list would keep only the last 50
    profile_checkout.one_order(
        client, session_key=session_key, csrf=csrf, secret=secret
    )
    for notice in raw.notices:
        if "PREPARE kq_" in notice:  # the text a prepared statement was made from
            _head, _, plan = notice.partition("\n")
            text, _, plan = plan.partition("\n")
            print(
                text[text.index("PREPARE kq_") :][:160],
                plan.rstrip(),
                sep="\n",
                end="\n\n",
            )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, generic_plans, custom_plans, left(statement, 90)"
            " FROM pg_prepared_statements ORDER BY name"
        )
        for row in cursor.fetchall():
            print(row)


if __name__ == "__main__":
    main()
