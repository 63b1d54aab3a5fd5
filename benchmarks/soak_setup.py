"""soak.py's set-up: the pool of sealed codes loaded by COPY, the card-code table's
autovacuum settings, and the stand-in autovacuum daemon when the server runs without one."""

from __future__ import annotations

import datetime as dt
import io
import multiprocessing as mp
import os
import secrets
import threading
import time
from decimal import Decimal
from typing import Any

import benchlib
import psycopg2

DB_NAME = "kaquan_bench_soak"
SKU = "SOAK-1"
PRICE = Decimal("30.00")
SEAL_CHUNK = 20_000
USERS_PER_PROCESS = 250
MAX_THRESHOLD = 100_000  # a "fixed threshold" above this is no eager vacuum


def _seal_init(env: dict[str, str]) -> None:
    benchlib.django_setup(env)


def _seal_chunk(span: tuple[int, int, int, int, str]) -> str:
    """COPY text for codes start..end: sealed by the app's vault, like an import."""
    from fulfillment import vault

    start, end, sku_id, batch_id, now = span
    out = io.StringIO()
    for i in range(start, end):
        sealed = vault.seal(f"SK{i:08d}{secrets.token_hex(6).upper()}")
        out.write(
            f"{sku_id}\t{batch_id}\t{sealed.ciphertext}\t{sealed.key_id}\t"
            f"{sealed.fingerprint}\t{sealed.hint}\tavailable\t{now}\n"
        )
    return out.getvalue()


def load_pool(env: dict[str, str], *, codes: int) -> dict[str, Any]:
    """The SKU, its batch of `codes` sealed available codes, and the shoppers."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import connection

    from fulfillment.models import CardCode, CodeBatch

    sku = benchlib.create_skus([SKU], platform_slug="soak", price=PRICE)[0]
    batch = CodeBatch.objects.create(sku=sku, note="soak")
    now = dt.datetime.now(tz=dt.UTC).isoformat()
    spans = [
        (s, min(codes, s + SEAL_CHUNK), sku.id, batch.id, now)
        for s in range(0, codes, SEAL_CHUNK)
    ]
    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")
    with (
        ctx.Pool(os.cpu_count() or 2, _seal_init, (env,)) as pool,
        connection.cursor() as cur,
    ):
        for text in pool.imap(_seal_chunk, spans):
            cur.cursor.copy_from(
                io.StringIO(text),
                CardCode._meta.db_table,
                columns=benchlib.CARDCODE_COPY_COLUMNS,
            )
    load_s = time.perf_counter() - t0
    CodeBatch.objects.filter(id=batch.id).update(imported_count=codes)
    with connection.cursor() as cur:
        t1 = time.perf_counter()
        cur.execute(f"VACUUM ANALYZE {CardCode._meta.db_table}")
        vacuum_s = time.perf_counter() - t1
    password = make_password(None)
    user_model = get_user_model()
    user_model.objects.bulk_create(
        user_model(username=f"soak{i}", email=f"soak{i}@example.com", password=password)
        for i in range(USERS_PER_PROCESS * 16)
    )
    return {
        "sku_id": sku.id,
        "codes": codes,
        "seal_and_copy_s": round(load_s, 1),
        "codes_per_s": round(codes / load_s),
        "vacuum_analyze_s": round(vacuum_s, 1),
    }


def autovacuum_settings() -> dict[str, Any]:
    """The card-code table's reloptions and the server switches they depend on."""
    from django.db import connection

    from fulfillment.models import CardCode

    with connection.cursor() as cur:
        cur.execute(
            "SELECT reloptions FROM pg_class WHERE oid = %s::regclass",
            [CardCode._meta.db_table],
        )
        options = dict(o.split("=", 1) for o in (cur.fetchone()[0] or []))
        cur.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN ('autovacuum', "
            "'track_counts', 'autovacuum_naptime', 'autovacuum_vacuum_threshold', "
            "'autovacuum_vacuum_scale_factor', 'autovacuum_analyze_threshold', "
            "'autovacuum_analyze_scale_factor', 'vacuum_cost_delay')"
        )
        server = dict(cur.fetchall())
    problems = []
    if options.get("autovacuum_vacuum_scale_factor") not in ("0", "0.0"):
        problems.append("autovacuum_vacuum_scale_factor is not 0")
    threshold = options.get("autovacuum_vacuum_threshold", "")
    if not threshold.isdigit() or int(threshold) > MAX_THRESHOLD:
        problems.append(
            f"autovacuum_vacuum_threshold is not a fixed <= {MAX_THRESHOLD}"
        )
    if options.get("autovacuum_vacuum_cost_delay") not in ("0", "0.0"):
        problems.append("autovacuum_vacuum_cost_delay is not 0")
    if options.get("vacuum_index_cleanup", "").lower() not in ("on", "true"):
        problems.append("vacuum_index_cleanup is not on")
    if server["track_counts"] != "on":
        problems.append("track_counts is off (autovacuum cannot see dead rows)")
    return {"reloptions": options, "server": server, "problems": problems}


class VacuumDaemon(threading.Thread):
    """Autovacuum's decision for one table, for a server that runs with autovacuum off.

    Every naptime: VACUUM when n_dead_tup > threshold + scale_factor * reltuples,
    with ANALYZE when n_mod_since_analyze passes the analyze threshold, the table's
    reloptions first and the server's settings otherwise (PostgreSQL's own rule).
    A plain VACUUM honours vacuum_index_cleanup; manual vacuum has no cost delay.
    """

    def __init__(self, *, table: str, settings: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        opts, server = settings["reloptions"], settings["server"]

        def pick(name: str) -> float:
            return float(opts[name] if name in opts else server[name])

        self.table = table
        self.naptime = float(server["autovacuum_naptime"])
        self.vacuum = (
            pick("autovacuum_vacuum_threshold"),
            pick("autovacuum_vacuum_scale_factor"),
        )
        self.analyze = (
            pick("autovacuum_analyze_threshold"),
            pick("autovacuum_analyze_scale_factor"),
        )
        self.stop = threading.Event()
        self.runs: list[dict[str, Any]] = []

    def run(self) -> None:
        conn = psycopg2.connect(benchlib.pg_dsn(DB_NAME))
        conn.autocommit = True
        with conn.cursor() as cur:
            while not self.stop.wait(self.naptime):
                cur.execute(
                    "SELECT n_dead_tup, n_mod_since_analyze, c.reltuples "
                    "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
                    "WHERE s.relname = %s",
                    [self.table],
                )
                dead, modified, tuples = cur.fetchone()
                if dead <= self.vacuum[0] + self.vacuum[1] * tuples:
                    continue
                analyze = modified > self.analyze[0] + self.analyze[1] * tuples
                t0 = time.perf_counter()
                cur.execute(f"VACUUM {'(ANALYZE) ' if analyze else ''}{self.table}")
                self.runs.append(
                    {
                        "at": dt.datetime.now(tz=dt.UTC).isoformat(timespec="seconds"),
                        "n_dead_tup": dead,
                        "analyze": analyze,
                        "seconds": round(time.perf_counter() - t0, 2),
                    }
                )
        conn.close()
