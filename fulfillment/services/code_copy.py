"""The import's PostgreSQL half: sealing processes and COPY (code_import.py drives them).

Why the workers are forked: fork hands each worker the vault's keys as they are in
this process's memory (settings, override_settings in tests), so no key travels
through arguments, pipes or the environment, and a worker starts in milliseconds
(spawn costs a fresh interpreter and Django set-up, and could read the keys only from
the environment). A forked worker also inherits this process's PostgreSQL socket,
which carries the import's transaction: its first act (sealing_process_init) is to
close its copy of the descriptor and drop the connection, as Celery's prefork pool
does, so no byte from the worker can reach that socket. Workers never use the database.
"""

from __future__ import annotations

import io
import logging
import os
from concurrent.futures import Future
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import psycopg2
from django.db import connections
from django.utils import timezone

from fulfillment import vault
from fulfillment.models import CardCode, CodeBatch

logger = logging.getLogger(__name__)

_COPY_READ_BYTES = 256 * 1024


@dataclass
class InFlight:
    fingerprints: set[str]
    rows: list[Future[bytes]]  # COPY text, UTF-8, one part per worker
    count: int


def sealing_process_init() -> None:
    """First act of each forked sealing process: let go of the parent's database
    connections without a byte on their sockets (module docstring).

    Closing our copy of the descriptor first makes the connection's farewell
    message go nowhere; the parent's descriptor, and its transaction, stay intact.
    """
    for conn in connections.all(initialized_only=True):
        raw = conn.connection
        if raw is None:
            continue
        with suppress(Exception):
            os.close(raw.fileno())
        with suppress(Exception):
            conn.close()


def seal_rows(items: list[tuple[str, str]], prefix: str, suffix: str) -> bytes:
    """COPY text rows (UTF-8) for (fingerprint, code) pairs; runs in a sealing process.

    Only the hint can hold a COPY special character: codes have no whitespace or
    control characters (codefile), so a backslash is the one to escape.
    """
    key_id, tokens = vault.encrypt_many(code for _fp, code in items)
    return "".join(
        f"{prefix}{token}\t{key_id}\t{fp}\t{_copy_escape(vault.mask(code))}{suffix}"
        for (fp, code), token in zip(items, tokens, strict=True)
    ).encode()


def _copy_escape(text: str) -> str:
    return text.replace("\\", "\\\\")


_COPY_FIELDS = (
    "sku",
    "batch",
    "ciphertext",
    "key_id",
    "fingerprint",
    "hint",
    "status",
    "expires_at",
    "created_at",
)


def _copy_columns() -> str:
    column = {f.name: f.column for f in CardCode._meta.concrete_fields}
    return ", ".join(column[name] for name in _COPY_FIELDS)


def copy_affixes(batch: CodeBatch) -> tuple[str, str]:
    """The text around (ciphertext, key_id, fingerprint, hint) in each COPY row."""
    expires = batch.expires_at.isoformat() if batch.expires_at else "\\N"
    now = timezone.now().isoformat()
    return (
        f"{batch.sku_id}\t{batch.pk}\t",
        f"\t{CardCode.Status.AVAILABLE}\t{expires}\t{now}\n",
    )


def copy_chunk(raw: Any, batch_id: int, chunk: InFlight) -> int:
    """COPY one sealed chunk into the codes table; returns the rows inserted.

    Runs on the copier thread, on the raw psycopg2 connection of the import's
    transaction, so it keeps its savepoint in SQL rather than through Django.
    """
    if not chunk.count:
        return 0
    # Bytes, not str: io.StringIO would hold four bytes per character.
    rows = b"".join(part.result() for part in chunk.rows)
    column = {f.name: f.column for f in CardCode._meta.concrete_fields}
    table, columns = CardCode._meta.db_table, _copy_columns()
    with raw.cursor() as cursor:
        # A savepoint: a refused COPY costs only this chunk, redone below.
        cursor.execute("SAVEPOINT kq_code_copy")
        try:
            cursor.copy_expert(
                f"COPY {table} ({columns}) FROM STDIN",
                io.BytesIO(rows),
                size=_COPY_READ_BYTES,
            )
        except psycopg2.IntegrityError:
            cursor.execute("ROLLBACK TO SAVEPOINT kq_code_copy")
        else:
            cursor.execute("RELEASE SAVEPOINT kq_code_copy")
            return chunk.count
        # Known codes in a chunk that skipped the look-up, or a concurrent import.
        logger.info("code batch %s: a chunk met codes already in the vault", batch_id)
        # Identifiers come from the model's own metadata; values travel in the COPY.
        cursor.execute(
            "CREATE TEMPORARY TABLE kq_code_import ON COMMIT DROP AS "  # noqa: S608
            f"SELECT {columns} FROM {table} WITH NO DATA"
        )
        cursor.copy_expert(
            f"COPY kq_code_import ({columns}) FROM STDIN",
            io.BytesIO(rows),
            size=_COPY_READ_BYTES,
        )
        cursor.execute(
            f"INSERT INTO {table} ({columns}) "  # noqa: S608
            f"SELECT {columns} FROM kq_code_import "
            f"ON CONFLICT ({column['sku']}, {column['fingerprint']}) DO NOTHING"
        )
        inserted: int = cursor.rowcount
        # Dropped now, not only on commit: an outer transaction may import again.
        cursor.execute("DROP TABLE kq_code_import")
        cursor.execute("RELEASE SAVEPOINT kq_code_copy")
    return inserted
