"""The import's PostgreSQL half: sealing processes and COPY (code_import.py drives them).

Why the workers are forked: fork hands each worker the vault's keys as they are in
this process's memory (settings, override_settings in tests), so no key travels
through arguments, pipes or the environment, and a worker starts in milliseconds
(spawn costs a fresh interpreter and Django set-up, and could read the keys only from
the environment). A forked worker also inherits this process's PostgreSQL socket,
which carries the import's transaction: its first act (sealing_process_init) is to
close its copy of the descriptor and drop the connection, as Celery's prefork pool
does, so no byte from the worker can reach that socket. Workers never use the database.

Rows travel in COPY's binary format: the sealing processes frame each value, and
PostgreSQL's one backend, which also updates six indexes and checks a foreign key
per row, parses no text (a timestamp per row was its dearest input function). A
chunk's COPY starts as soon as its first part is sealed and reads the next parts as
they come (CopyStream), so PostgreSQL does not wait for a whole chunk; the (batch,
SKU) key is checked as each COPY ends (batch_key_checked_per_copy), while the next
chunk is sealed, rather than all at COMMIT with nothing else to do.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import struct
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import psycopg2
from django.db import connection, connections
from django.utils import timezone

from fulfillment import vault
from fulfillment.models import CardCode, CodeBatch

logger = logging.getLogger(__name__)

_COPY_READ_BYTES = 256 * 1024

# COPY's binary format: signature, flags, header extension length; the trailer.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_int32 = struct.Struct(">i").pack
_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_NULL = _int32(-1)

# The codes' one foreign key on (batch, SKU) (fulfillment migration 0008).
BATCH_SKU_FK = "cardcode_batch_sku_fk"

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


@dataclass
class InFlight:
    fingerprints: set[str]
    rows: list[Future[bytes]]  # binary COPY tuples, in file order, a part per task
    count: int


@dataclass(frozen=True)
class CopyAffixes:
    """The binary COPY fields around the sealed ones, the same for every row."""

    prefix: bytes  # field count, sku, batch
    suffix: bytes  # status, expires_at, created_at


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


def seal_rows(items: list[tuple[str, str]], affixes: CopyAffixes) -> bytes:
    """Binary COPY tuples for (fingerprint, code) pairs; runs in a sealing process."""
    key_id, tokens = vault.encrypt_many(code for _fp, code in items)
    key = key_id.encode()
    key_field = _int32(len(key)) + key
    prefix, suffix = affixes.prefix, affixes.suffix
    fields: list[bytes] = []
    for (fp, code), token in zip(items, tokens, strict=True):
        sealed, mark, hint = token.encode(), fp.encode(), vault.mask(code).encode()
        fields += (
            prefix,
            _int32(len(sealed)),
            sealed,
            key_field,
            _int32(len(mark)),
            mark,
            _int32(len(hint)),
            hint,
            suffix,
        )
    return b"".join(fields)


def copy_affixes(batch: CodeBatch) -> CopyAffixes:
    """The constant fields of this batch's rows: SKU, batch, status and times."""
    return CopyAffixes(
        prefix=struct.pack(">hiqiq", len(_COPY_FIELDS), 8, batch.sku_id, 8, batch.pk),
        suffix=_text(CardCode.Status.AVAILABLE)
        + _timestamp(batch.expires_at)
        + _timestamp(timezone.now()),
    )


def _text(value: str) -> bytes:
    data = value.encode()
    return _int32(len(data)) + data


def _timestamp(value: dt.datetime | None) -> bytes:
    """A timestamptz field: microseconds since 2000-01-01 UTC (PostgreSQL's epoch)."""
    if value is None:
        return _NULL
    return struct.pack(">iq", 8, (value - _PG_EPOCH) // dt.timedelta(microseconds=1))


class _SealingFailed(Exception):
    """Raised through psycopg2, which keeps only its name: the real error is
    CopyStream.failure (a message of the sealing's must not reach the server)."""


class CopyStream:
    """A chunk as copy_expert reads it: header, each sealed part once it is ready
    (in file order), trailer. Read again for a retry: the parts are kept."""

    def __init__(self, parts: list[Future[bytes]]) -> None:
        self._pieces: Iterator[bytes | Future[bytes]] = iter(
            [_COPY_HEADER, *parts, _COPY_TRAILER]
        )
        self.failure: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        # Whole pieces whatever `size` asks: psycopg2 sends what it is given, and
        # an empty answer ends the COPY, so an empty part is skipped. A part that
        # failed must fail the COPY, not end it: binary COPY takes an early end
        # of data, trailer or not, for the end of the rows.
        for piece in self._pieces:
            if isinstance(piece, bytes):
                data = piece
            else:
                try:
                    data = piece.result()
                except BaseException as exc:
                    self.failure = exc
                    raise _SealingFailed from None
            if data:
                return data
        return b""


def _copy(cursor: Any, sql: str, stream: CopyStream) -> None:
    """copy_expert, raising what failed in a sealing process as itself."""
    try:
        cursor.copy_expert(sql, stream, size=_COPY_READ_BYTES)
    except psycopg2.Error:
        if stream.failure is not None:
            raise stream.failure from None
        raise


@contextmanager
def batch_key_checked_per_copy() -> Iterator[None]:
    """Check the codes' (batch, SKU) key as each COPY ends, not all at COMMIT.

    The check is the same, row for row; done per chunk it runs while the sealing
    processes work on the next chunks, instead of after everything, alone, on one
    core (about a quarter of PostgreSQL's time for an import). The key is back to
    its declared INITIALLY DEFERRED for the rest of the caller's transaction; on an
    error the rollback (to the import's savepoint, if nested) undoes the SET.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute(f"SET CONSTRAINTS {BATCH_SKU_FK} IMMEDIATE")
    yield
    with connection.cursor() as cursor:
        cursor.execute(f"SET CONSTRAINTS {BATCH_SKU_FK} DEFERRED")


def _copy_columns() -> str:
    column = {f.name: f.column for f in CardCode._meta.concrete_fields}
    return ", ".join(column[name] for name in _COPY_FIELDS)


def copy_chunk(raw: Any, batch_id: int, chunk: InFlight) -> int:
    """COPY one sealed chunk into the codes table; returns the rows inserted.

    Runs on the copier thread, on the raw psycopg2 connection of the import's
    transaction, so it keeps its savepoint in SQL rather than through Django.
    """
    if not chunk.count:
        return 0
    column = {f.name: f.column for f in CardCode._meta.concrete_fields}
    table, columns = CardCode._meta.db_table, _copy_columns()
    with raw.cursor() as cursor:
        # A savepoint: a refused COPY costs only this chunk, redone below.
        cursor.execute("SAVEPOINT kq_code_copy")
        try:
            _copy(
                cursor,
                f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT binary)",
                CopyStream(chunk.rows),
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
        _copy(
            cursor,
            f"COPY kq_code_import ({columns}) FROM STDIN WITH (FORMAT binary)",
            CopyStream(chunk.rows),
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
