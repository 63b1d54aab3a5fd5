"""The risk counts from the orders tables: the database path of risk/counters.py.

One SQL statement: a one-row SELECT per group of subjects, side by side (a
CROSS JOIN of single rows): the order's own (IP, device, account: one table, so
PostgreSQL ORs their indexes order_ip_created_idx, order_device_created_idx,
order_user_created_idx) and the recharge account (orderline_recharge_upper_idx).
Every count is one `FILTER`ed aggregate of its group's SELECT.
Each order is counted by its top-level line: a checkout buys one SKU, and a
bundle's parts sit under its line.

Written as SQL rather than with the ORM on purpose: compiling the equivalent
queryset (a dozen filtered aggregates over a join) cost about 1.8 ms of CPU per
checkout, most of the engine's budget (benchmarks/risk_overhead.py). Every value
is a parameter; the fragments are constants of this module.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.db import connection

from catalog.models import Product, Sku
from config.lib.prepared import execute
from orders.models import Order, OrderLine
from risk.matching import (
    Subject,
    counted_value,
    normalize_ip,
    normalize_recharge_account,
)
from risk.rules import SCOPE_PLATFORM, SCOPE_SKU, Metric, Query
from risk.types import Signals

Fragment = tuple[str, list[Any]]

_SUBJECT_SQL = {
    Subject.IP: "o.ip_address = %s",
    Subject.DEVICE: "o.device_id = %s",
    Subject.ACCOUNT: "o.user_id = %s",
    # The same expression as the index (PostgreSQL casts varchar to text for UPPER).
    Subject.RECHARGE_ACCOUNT: "UPPER(l.recharge_account) = UPPER(%s)",
}


def _subject(subject: str, value: str, signals: Signals) -> Fragment:
    if subject == Subject.IP and "/" in value:
        if connection.vendor != "postgresql":  # the SQLite demo: the address alone
            return "o.ip_address = %s", [normalize_ip(signals.ip)]
        # An IPv6 /64 (matching.counted_value); `<<=` is served by the btree index.
        return "o.ip_address <<= %s::inet", [value]
    if subject == Subject.ACCOUNT:
        return _SUBJECT_SQL[Subject.ACCOUNT], [int(value)]
    return _SUBJECT_SQL[Subject(subject)], [value]


def _scope(query: Query) -> Fragment:
    if query.scope == SCOPE_SKU:
        return " AND l.sku_id = %s", [query.scope_id]
    if query.scope == SCOPE_PLATFORM:
        sql = (
            f" AND l.sku_id IN (SELECT s.id FROM {Sku._meta.db_table} s"  # noqa: S608
            f" JOIN {Product._meta.db_table} p ON p.id = s.product_id"
            " WHERE p.platform_id = %s)"
        )
        return sql, [query.scope_id]
    return "", []


def _time_key(query: Query) -> tuple[str, int | None]:
    if query.metric == Metric.UNPAID:
        return "unpaid", None
    return "since", query.window


def _time(query: Query, now: dt.datetime) -> Fragment:
    if query.metric == Metric.UNPAID:
        return "(o.status = %s AND o.expires_at > %s)", [Order.Status.PENDING, now]
    if query.window is None:
        # Lifetime limits count what was bought: an unpaid order that was
        # cancelled gives its units back.
        return "o.status <> %s", [Order.Status.CANCELLED]
    return "o.created_at > %s", [now - dt.timedelta(seconds=query.window)]


def _aggregate(query: Query, where: Fragment, current_ra: str) -> Fragment:
    sql, params = where
    if query.metric in (Metric.ORDERS, Metric.UNPAID):
        return f"COUNT(DISTINCT l.order_id) FILTER (WHERE {sql})", params
    if query.metric == Metric.AMOUNT:
        return f"SUM(o.total_amount) FILTER (WHERE {sql})", params
    if query.metric == Metric.QUANTITY:
        return f"SUM(l.quantity) FILTER (WHERE {sql})", params
    # Distinct recharge accounts other than this checkout's (added after).
    return (
        f"COUNT(DISTINCT UPPER(l.recharge_account)) FILTER (WHERE {sql}"
        " AND l.recharge_account <> '' AND UPPER(l.recharge_account) <> UPPER(%s))",
        [*params, current_ra],
    )


def _current(query: Query, signals: Signals) -> Decimal:
    """What the checkout being assessed adds to `query`."""
    if query.metric == Metric.AMOUNT:
        return signals.amount
    if query.metric == Metric.QUANTITY:
        return Decimal(signals.quantity)
    return Decimal(1)


def _one_group(
    signals: Signals, planned: list[tuple[Query, str]], current_ra: str
) -> Fragment:
    """One group's SELECT: a single row of aggregates, one per query."""
    subjects: dict[str, Fragment] = {}
    times: dict[tuple[str, int | None], Fragment] = {}
    selects: list[Fragment] = []
    for query, value in planned:
        subjects.setdefault(query.subject, _subject(query.subject, value, signals))
        times.setdefault(_time_key(query), _time(query, signals.now))
    # A lifetime count reads every order of its subject but the cancelled ones:
    # the times' OR in the WHERE would then keep nearly every row and only cost
    # planning (~0.12 ms of 0.7), so the FILTERs alone check the times.
    times_in_where = ("since", None) not in times
    # A condition every row of the WHERE meets (one subject, or one time in the
    # group) is not repeated in the FILTERs: fewer predicates to plan.
    for query, _value in planned:
        parts = [subjects[query.subject]] if len(subjects) > 1 else []
        if len(times) > 1 or not times_in_where:
            parts.append(times[_time_key(query)])
        scope = _scope(query)
        if scope[0]:
            parts.append((scope[0].removeprefix(" AND "), scope[1]))
        where = (
            " AND ".join(p for p, _ps in parts) or "TRUE",
            [v for _p, ps in parts for v in ps],
        )
        selects.append(_aggregate(query, where, current_ra))
    times_sql: Fragment = ("", [])
    if times_in_where:
        times_sql = (
            " AND (" + " OR ".join(s for s, _p in times.values()) + ")",
            [p for _s, ps in times.values() for p in ps],
        )
    # Constant fragments and model table names; every value is a parameter.
    sql = (
        "SELECT "  # noqa: S608
        + ", ".join(s for s, _p in selects)
        + f" FROM {OrderLine._meta.db_table} l"
        + f" JOIN {Order._meta.db_table} o ON o.id = l.order_id"
        + " WHERE l.parent_id IS NULL"
        + " AND (" + " OR ".join(s for s, _p in subjects.values()) + ")"
        + times_sql[0]
    )  # fmt: skip
    params = [p for _s, ps in selects for p in ps]
    params += [p for _s, ps in subjects.values() for p in ps]
    params += times_sql[1]
    if signals.order_id is not None:
        sql += " AND l.order_id <> %s"
        params.append(signals.order_id)
    return sql, params


def db_counts(signals: Signals, queries: Mapping[Query, float]) -> dict[Query, Decimal]:
    """Each query's value from the orders tables, the checkout being assessed
    included (and, at stage PAID, the order itself counted once).

    Locks: none (plain reads: racing checkouts are Redis's to count).
    """
    current_ra = normalize_recharge_account(signals.recharge_account)
    groups: dict[bool, list[tuple[Query, str]]] = {}
    for query in queries:
        value = counted_value(query.subject, signals)
        if value is not None:
            is_ra = query.subject == Subject.RECHARGE_ACCOUNT
            groups.setdefault(is_ra, []).append((query, value))
    if not groups:
        return {}
    # One statement whatever the groups: each group's one-row SELECT, side by
    # side (each keeps its own plan and index; one round trip, not two).
    selects = [_one_group(signals, planned, current_ra) for planned in groups.values()]
    sql, params = selects[0]
    if len(selects) > 1:
        sql = "SELECT * FROM " + " CROSS JOIN ".join(  # noqa: S608 (our fragments)
            f"({s}) g{i}" for i, (s, _p) in enumerate(selects)
        )
        params = [p for _s, ps in selects for p in ps]
    with connection.cursor() as cursor:
        # Prepared: the text is fixed for a rule set, and planning it cost more
        # than running it (docs/PERFORMANCE.md, "Risk engine cost").
        execute(cursor, sql, params)
        row = iter(cursor.fetchone())
    counts: dict[Query, Decimal] = {}
    for planned in groups.values():
        for query, _value in planned:
            counts[query] = Decimal(next(row) or 0) + _current(query, signals)
    return counts
