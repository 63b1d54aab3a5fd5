"""Prepared statements for the paid path's hand-written SQL (PostgreSQL).

PostgreSQL spends about 0.5 ms of CPU per statement on parsing, analysing and
planning it, four times what running the paid path's index look-ups costs
(docs/PERFORMANCE.md, "Paid path, session 6"). `execute` PREPAREs a statement's
text once per connection and runs it as `EXECUTE name(...)` from then on:
psycopg2 still quotes the parameters client-side (into the EXECUTE's argument
list), so nothing changes for the caller but the server's work.

- A text is prepared on its second run on a connection (the first runs as
  plain SQL): what a connection runs once costs no PREPARE.
- The name is a hash of the text, so a text has one name on every connection.
  Texts of variable shape (IN lists, multi-row VALUES) are distinct statements:
  a connection keeps at most `PREPARED_PER_CONNECTION`, the least recently used
  DEALLOCATEd first.
- The set of prepared names belongs to the psycopg2 connection it was made on:
  when Django closes or replaces the connection, the next call starts afresh.
- A PREPARE that fails inside a transaction would abort it: there it runs in a
  savepoint, and a text PostgreSQL refuses to prepare runs as plain SQL from
  then on (remembered per process). The PREPARE and its savepoint go through
  the raw psycopg2 cursor: Django's query log and `assertNumQueries` see the
  statements the caller asked for, once prepared as before.
- In Django's query log (DEBUG, `CaptureQueriesContext`) an EXECUTE appears as
  the statement it ran, with its values, then `/* EXECUTE name */`.
- Other databases, and `DB_PREPARED_STATEMENTS = False` (a transaction-pooling
  proxy such as PgBouncer forgets prepared statements between transactions):
  plain execution.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper

logger = logging.getLogger(__name__)

# The paid path runs ~16 distinct texts; bundles, sweeps and admin actions add
# IN lists of several lengths. Each prepared statement holds a few kB of the
# backend's memory (its parse tree and, once planned, its plan).
PREPARED_PER_CONNECTION = 64
# Texts PostgreSQL refused to prepare (a parameter of unknown type...): run
# plainly. A set bounded so that a runaway of distinct texts cannot grow it.
_REFUSED_MAX = 256
_refused: set[str] = set()

_SAVEPOINT = "kq_prepare"
_DUPLICATE_PREPARED = "42P05"  # duplicate_prepared_statement
_UNKNOWN_PREPARED = "26000"  # invalid_sql_statement_name (DEALLOCATE of nothing)
# An EXECUTE of a statement the server no longer has, or whose result a schema
# change altered (feature_not_supported: "cached plan must not change result type").
_STALE = (_UNKNOWN_PREPARED, "0A000")
_IN_ERROR = 3  # psycopg2.extensions.TRANSACTION_STATUS_INERROR
_MARK = re.compile(r"%[s%]")


class _Prepared:
    """The statements prepared on one psycopg2 connection (text → name, least
    recently used first) and the texts it has run once, plainly."""

    __slots__ = ("names", "raw", "seen", "stale")

    def __init__(self, raw: Any, *, stale: bool = False) -> None:
        self.raw = raw
        self.names: OrderedDict[str, str] = OrderedDict()
        self.seen: set[str] = set()
        # The server's prepared statements are not what we thought (one was
        # gone, or a schema change made one unusable): DEALLOCATE ALL first.
        self.stale = stale


@lru_cache(maxsize=1024)
def _translate(sql: str) -> tuple[str, str, int] | None:
    """(name, the text with $n placeholders, how many) or None when the text
    cannot be prepared as it is (named placeholders, a `$` of its own)."""
    if "$" in sql or "%(" in sql:
        return None
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if match.group() == "%%":
            return "%"
        count += 1
        return f"${count}"

    text = _MARK.sub(number, sql)
    name = "kq_" + hashlib.blake2b(sql.encode(), digest_size=8).hexdigest()
    return name, text, count


def prepared_names(db: Any) -> list[str]:
    """The names `execute` holds as prepared on `db`'s current connection,
    least recently used first (for tests and diagnostics)."""
    state: _Prepared | None = getattr(db, "_kq_prepared", None)
    if state is None or state.raw is not db.connection:
        return []
    return list(state.names.values())


def execute(cursor: CursorWrapper, sql: str, params: Sequence[Any]) -> None:
    """`cursor.execute(sql, params)`, as a prepared statement on PostgreSQL.

    `sql` uses `%s` placeholders (`%%` for a percent sign), one per value of
    `params`. The statement's result is read from `cursor` as usual.
    """
    db = cursor.db
    if db.vendor != "postgresql" or not settings.DB_PREPARED_STATEMENTS:
        cursor.execute(sql, params)
        return
    name = _name_for(db, cursor, sql, len(params))
    if name is None:
        cursor.execute(sql, params)
        return
    executed = (
        f"EXECUTE {name}({', '.join(['%s'] * len(params))})"
        if params
        else f"EXECUTE {name}"
    )
    try:
        cursor.execute(executed, params)
    except DatabaseError as exc:
        if getattr(exc.__cause__, "pgcode", None) in _STALE:
            # Raised to the caller (its transaction is aborted); the next
            # statement on this connection starts afresh.
            db._kq_prepared = _Prepared(db.connection, stale=True)
        raise
    finally:
        if isinstance(cursor, CursorDebugWrapper):
            # The debug cursor logged "EXECUTE kq_…('…')": show what it ran.
            shown = cursor.cursor.mogrify(sql, params).decode()
            db.queries_log[-1]["sql"] = f"{shown} /* EXECUTE {name} */"


def _name_for(db: Any, cursor: CursorWrapper, sql: str, count: int) -> str | None:
    """The prepared statement's name for `sql` on this connection, prepared now
    if need be; None: run it plainly."""
    raw = db.connection
    state: _Prepared | None = getattr(db, "_kq_prepared", None)
    if state is None or state.raw is not raw:
        # A new connection (Django reconnected): nothing is prepared on it.
        state = db._kq_prepared = _Prepared(raw)
    name = state.names.get(sql)
    if name is not None:
        state.names.move_to_end(sql)
        return name
    if sql in _refused:
        return None
    if sql not in state.seen:
        # Prepared on its second run: a text run once per connection (a
        # script's, an IN list of an unusual length) costs no PREPARE.
        if len(state.seen) >= 4 * PREPARED_PER_CONNECTION:
            state.seen.clear()
        state.seen.add(sql)
        return None
    translated = _translate(sql)
    if translated is None or translated[2] != count:
        return None
    if raw.info.transaction_status == _IN_ERROR:
        return None  # the caller's statement will report the aborted transaction
    name, text, _count = translated
    evicted = None
    if len(state.names) >= PREPARED_PER_CONNECTION:
        _old_sql, evicted = state.names.popitem(last=False)
    state.seen.discard(sql)
    if state.stale:
        evicted, state.stale = "ALL", False
    # A failure _prepare does not handle (the connection broke) reaches the
    # caller as Django's error, with the connection marked for its health check.
    with db.wrap_database_errors:
        prepared = _prepare(raw, cursor.cursor, name, text, evicted)
    if not prepared:
        if prepared is False and len(_refused) < _REFUSED_MAX:
            _refused.add(sql)
        return None
    state.names[sql] = name
    return name


def _prepare(
    raw: Any, cursor: Any, name: str, text: str, evicted: str | None
) -> bool | None:
    """PREPARE `name` (DEALLOCATE `evicted` first, "ALL" for all). True when
    prepared; False when PostgreSQL refused the text (a syntax or analysis
    error, class 42: it would refuse it again); None on another error (a lock
    or statement timeout...): plain this time, prepared another time.

    In a transaction (autocommit off) the statements run in a savepoint, one
    round trip, so that a refusal leaves the caller's transaction usable.
    Prepared statements are not transactional: a later rollback keeps them.
    """
    import psycopg2

    statements = [f"PREPARE {name} AS {text}"]
    if evicted is not None:
        statements.insert(0, f"DEALLOCATE {evicted}")
    in_transaction = not raw.autocommit
    if in_transaction:
        statements = [
            f"SAVEPOINT {_SAVEPOINT}",
            *statements,
            f"RELEASE SAVEPOINT {_SAVEPOINT}",
        ]
    try:
        cursor.execute("; ".join(statements))
    except psycopg2.Error as exc:
        if in_transaction:
            cursor.execute(
                f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}; RELEASE SAVEPOINT {_SAVEPOINT}"
            )
        if exc.pgcode == _DUPLICATE_PREPARED:
            return True  # prepared before under this name (same text, same hash)
        if exc.pgcode == _UNKNOWN_PREPARED and evicted is not None:
            # The evicted statement was gone already (DEALLOCATE ALL, DISCARD).
            return _prepare(raw, cursor, name, text, None)
        logger.info("statement not prepared (%s): %s", exc.pgcode, name)
        return False if (exc.pgcode or "").startswith("42") else None
    return True
