"""config/lib/prepared.py: the hot SQL as prepared statements on PostgreSQL."""

from __future__ import annotations

import contextlib
from decimal import Decimal

import pytest
from django.db import (
    DataError,
    InternalError,
    OperationalError,
    connection,
    transaction,
)
from django.test.utils import CaptureQueriesContext

from config.lib import prepared
from config.lib.db import execute
from config.lib.prepared import prepared_names

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _on_postgresql():
    """Prepared statements are PostgreSQL's: the suite runs there (as elsewhere,
    an assertion, never a skip)."""
    assert connection.vendor == "postgresql"


def _server_names() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return {row[0] for row in cursor.fetchall()}


def _fresh() -> None:
    """Nothing prepared on this connection (other tests' statements gone)."""
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    connection._kq_prepared = None


def _run(sql: str, params: list[object]) -> list[tuple[object, ...]]:
    with connection.cursor() as cursor:
        execute(cursor, sql, params)
        return list(cursor.fetchall())


def test_execute_prepares_a_statement_once_and_answers_as_plain_sql():
    sql = "SELECT %s::int + 1, %s::text || '%%', %s::numeric * 2 /* t1 */"
    _fresh()
    with connection.cursor() as cursor:
        cursor.execute(sql, [41, "a", "1.25"])
        plain = cursor.fetchall()

    first = _run(sql, [41, "a", "1.25"])
    assert prepared_names(connection) == []  # run once: plain
    second = _run(sql, [41, "a", "1.25"])
    names = prepared_names(connection)
    third = _run(sql, [41, "a", "1.25"])

    assert first == second == third == plain == [(42, "a%", Decimal("2.50"))]
    assert len(names) == 1
    assert names[0] in _server_names()
    assert prepared_names(connection) == names  # not prepared twice


def test_execute_shows_the_statement_it_ran_in_the_query_log():
    _run("SELECT %s::int /* t2 */", [1])

    with CaptureQueriesContext(connection) as ctx:
        _run("SELECT %s::int /* t2 */", [7])

    assert len(ctx.captured_queries) == 1  # the PREPARE is not counted
    sql = ctx.captured_queries[0]["sql"]
    assert sql.startswith("SELECT 7::int /* t2 */ /* EXECUTE kq_")


def test_a_refused_prepare_leaves_the_callers_transaction_usable():
    # PostgreSQL cannot type $1 in `$1 IS NULL`: PREPARE fails, plain SQL works.
    sql = "SELECT %s IS NULL /* t3 */"

    assert _run(sql, ["y"]) == [(False,)]  # first run: plain

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("CREATE TEMP TABLE t3 (a int)")
            cursor.execute("INSERT INTO t3 VALUES (1)")
        assert _run(sql, ["x"]) == [(False,)]  # second: PREPARE refused
        assert _run("SELECT count(*) FROM t3", []) == [(1,)]  # not aborted

    assert sql in prepared._refused
    refused = prepared._translate(sql)
    assert refused is not None
    assert refused[0] not in _server_names()
    assert _run(sql, [None]) == [(True,)]  # plain from now on


def _aborted_then_run(sql: str) -> None:
    with transaction.atomic():
        with connection.cursor() as cursor, contextlib.suppress(DataError):
            cursor.execute("SELECT 1/0")  # swallowed: the transaction is aborted
        _run(sql, [5])


def test_execute_in_an_aborted_transaction_reports_the_callers_error():
    sql = "SELECT %s::int /* t4 */"
    _run(sql, [4])  # seen: the next run would prepare it

    with pytest.raises(InternalError, match="current transaction is aborted"):
        _aborted_then_run(sql)

    assert sql not in prepared._refused
    assert _run(sql, [5]) == [(5,)]  # prepared once the transaction is healthy


def test_the_cap_deallocates_the_least_recently_used(monkeypatch):
    monkeypatch.setattr(prepared, "PREPARED_PER_CONNECTION", 2)
    _fresh()

    for i in range(3):
        _run(f"SELECT %s::int /* cap {i} */", [i])
        _run(f"SELECT %s::int /* cap {i} */", [i])
    names = prepared_names(connection)

    assert len(names) == 2
    on_server = _server_names()
    assert set(names) <= on_server
    first = prepared._translate("SELECT %s::int /* cap 0 */")
    assert first is not None
    assert first[0] not in on_server
    assert _run("SELECT %s::int /* cap 0 */", [9]) == [(9,)]
    assert _run("SELECT %s::int /* cap 0 */", [9]) == [(9,)]
    assert first[0] in _server_names()  # prepared again


def test_a_statement_deallocated_behind_our_back_is_evicted_cleanly(monkeypatch):
    monkeypatch.setattr(prepared, "PREPARED_PER_CONNECTION", 1)
    _fresh()
    _run("SELECT %s::int /* gone 0 */", [0])
    _run("SELECT %s::int /* gone 0 */", [0])
    assert len(_server_names()) == 1
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")

    _run("SELECT %s::int /* gone 1 */", [1])
    with transaction.atomic():
        assert _run("SELECT %s::int /* gone 1 */", [1]) == [(1,)]
        assert _run("SELECT 2", []) == [(2,)]

    assert len(prepared_names(connection)) == 1


def test_execute_runs_plain_sql_when_turned_off(settings):
    settings.DB_PREPARED_STATEMENTS = False

    assert _run("SELECT %s::int /* off */", [3]) == [(3,)]
    assert _run("SELECT %s::int /* off */", [3]) == [(3,)]

    off = prepared._translate("SELECT %s::int /* off */")
    assert off is not None
    assert off[0] not in prepared_names(connection)
    assert off[0] not in _server_names()


@pytest.mark.django_db(transaction=True)
def test_a_new_connection_starts_with_nothing_prepared():
    _run("SELECT %s::int /* reconnect */", [1])
    _run("SELECT %s::int /* reconnect */", [1])
    assert prepared_names(connection)

    connection.close()
    connection.ensure_connection()

    assert prepared_names(connection) == []
    assert _server_names() == set()
    assert _run("SELECT %s::int /* reconnect */", [2]) == [(2,)]
    assert prepared_names(connection) == []  # seen afresh on this connection
    assert _run("SELECT %s::int /* reconnect */", [2]) == [(2,)]
    assert prepared_names(connection)[0] in _server_names()


def test_an_execute_of_a_statement_gone_from_the_server_starts_afresh():
    _fresh()
    sql = "SELECT %s::int /* vanished */"
    _run(sql, [1])
    _run(sql, [1])
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # as a pooler's reset would

    with pytest.raises(OperationalError, match="does not exist"), transaction.atomic():
        _run(sql, [2])

    assert prepared_names(connection) == []
    assert _run(sql, [3]) == [(3,)]  # plain
    assert _run(sql, [4]) == [(4,)]  # prepared again
    assert prepared_names(connection)[0] in _server_names()


def test_a_capture_begun_inside_a_plain_cursor_keeps_its_log_true():
    sql = "SELECT %s::int /* inside */"
    _run(sql, [1])
    _run("SELECT 'logged' /* before */", [])

    with connection.cursor() as cursor, CaptureQueriesContext(connection) as ctx:
        cursor.execute("SELECT 'logged'")  # a plain cursor: nothing logged
        execute(cursor, sql, [2])

    assert ctx.captured_queries == []


def test_a_prepare_failing_for_another_reason_is_tried_again_later():
    # Not a syntax or analysis error (class 42): the text is not refused for good.
    sql = "SELECT %s::int + '99999999999'::int /* out of range */"

    for _ in range(2):
        with pytest.raises(DataError), transaction.atomic():
            _run(sql, [1])

    assert sql not in prepared._refused
