"""import_codes.py's raw side: the code files written, and the raw COPYs (bare table,
LIKE-cardcode table, fulfillment_cardcode itself, the duplicate re-import) the service is
compared with."""

from __future__ import annotations

import datetime as dt
import io
import secrets
import time
from pathlib import Path

import benchlib
import psycopg2


def write_codes(path: Path, count: int) -> bytes:
    content = "\n".join(secrets.token_hex(8).upper() for _ in range(count)).encode()
    path.write_bytes(content)
    return content


def copy_rows(count: int, *, sku_id: int, batch_id: int) -> str:
    """Tab-separated rows shaped like fulfillment_cardcode's."""
    now = dt.datetime.now(tz=dt.UTC).isoformat()
    buf = io.StringIO()
    for _ in range(count):
        buf.write(
            f"{sku_id}\t{batch_id}\t{secrets.token_urlsafe(75)}\tbench\t{secrets.token_hex(32)}\tAB****YZ\tavailable\t{now}\n"
        )
    return buf.getvalue()


COPY_COLUMNS = benchlib.CARDCODE_COPY_COLUMNS


def copy_like_once(dsn: str, count: int, *, sku_id: int, batch_id: int) -> float:
    """Seconds to COPY `count` new rows into a new LIKE-cardcode table (then dropped)."""
    data = copy_rows(count, sku_id=sku_id, batch_id=batch_id)
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE bench_copy_pair (LIKE fulfillment_cardcode INCLUDING ALL)"
            )
            conn.commit()
            t0 = time.perf_counter()
            cur.copy_from(io.StringIO(data), "bench_copy_pair", columns=COPY_COLUMNS)
            conn.commit()
            seconds = time.perf_counter() - t0
            cur.execute("DROP TABLE bench_copy_pair")
            conn.commit()
    finally:
        conn.close()
    return seconds


def raw_copy(dsn: str, count: int, *, sku_id: int, batch_id: int) -> dict[str, float]:
    """COPY into a bare table, a LIKE-cardcode table and the real one (its foreign keys
    checked at commit); then a raw duplicate re-import."""
    data = copy_rows(count, sku_id=sku_id, batch_id=batch_id)
    conn = psycopg2.connect(dsn)
    backend = conn.info.backend_pid
    out: dict[str, float] = {}
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE bench_copy_bare (sku_id bigint, batch_id bigint, ciphertext text, key_id varchar(16), "
            "fingerprint varchar(64), hint varchar(24), status varchar(10), created_at timestamptz)"
        )
        cur.execute(
            "CREATE TABLE bench_copy_like (LIKE fulfillment_cardcode INCLUDING ALL)"
        )
        conn.commit()
        for name, table in (
            ("copy_bare", "bench_copy_bare"),
            ("copy_like_cardcode", "bench_copy_like"),
            ("copy_cardcode", "fulfillment_cardcode"),
        ):
            cpu0 = benchlib.proc_cpu_seconds(backend) or 0.0
            t0 = time.perf_counter()
            cur.copy_from(io.StringIO(data), table, columns=COPY_COLUMNS)
            conn.commit()
            out[name] = time.perf_counter() - t0
            out[f"pg_cpu_{name}"] = (benchlib.proc_cpu_seconds(backend) or 0.0) - cpu0
        # the raw equivalent of re-importing the same file: every row a duplicate
        t0 = time.perf_counter()
        cur.execute("CREATE TEMP TABLE incoming (LIKE bench_copy_bare)")
        cur.copy_from(io.StringIO(data), "incoming", columns=COPY_COLUMNS)
        cur.execute(
            "INSERT INTO bench_copy_like (sku_id, batch_id, ciphertext, key_id, fingerprint, hint, status, created_at) "
            "SELECT sku_id, batch_id, ciphertext, key_id, fingerprint, hint, status, created_at FROM incoming "
            "ON CONFLICT (sku_id, fingerprint) DO NOTHING"
        )
        inserted = cur.rowcount
        conn.commit()
        out["copy_duplicates_on_conflict"] = time.perf_counter() - t0
        if inserted != 0:
            raise SystemExit(f"raw duplicate re-import inserted {inserted} rows")
        cur.execute("DROP TABLE bench_copy_bare, bench_copy_like")
        conn.commit()
    conn.close()
    return out
