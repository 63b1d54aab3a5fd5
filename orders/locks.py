"""Row locks for orders.

Global lock order: User → Order → OrderLine → Sku/stock → CardCode → TopUp → Commission.
A guest checkout takes its email's advisory lock where an account's takes User.
Every service takes locks in this order, so two of them can never wait on each
other in a cycle (proven by the threaded tests in tests/orders/).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connection, connections

from config.lib.db import Write, execute, row_get
from config.lib.db_fold import Locked, row_lock_then
from orders.models import Order, OrderLine, Refund


def user_lock_for_update(*, user_id: int) -> None:
    """Serialise one shopper's checkouts (unpaid-order limit, double-click token).

    One plain statement (the checkout's hot path; config/lib/db.py).
    """
    db = connections[DEFAULT_DB_ALIAS]  # once: each `connection.` is a look-up
    with db.cursor() as cursor:
        execute(
            cursor,
            _user_lock_sql(settings.AUTH_USER_MODEL, db.vendor),
            [user_id],
        )


@functools.lru_cache(maxsize=4)
def _user_lock_sql(user_model: str, vendor: str) -> str:
    """The lock's text, built once per user model and database (both fixed in a
    running shop; keyed by them for the tests that change a setting)."""
    db = connections[DEFAULT_DB_ALIAS]
    meta = get_user_model()._meta
    assert meta.pk is not None  # noqa: S101
    quote = db.ops.quote_name
    lock = " FOR UPDATE" if db.features.has_select_for_update else ""
    return (
        f"SELECT {quote(meta.pk.column)} FROM {quote(meta.db_table)}"  # noqa: S608
        f" WHERE {quote(meta.pk.column)} = %s{lock}"
    )


def guest_lock_for_update(*, email: str) -> None:
    """Serialise one guest email's checkouts (unpaid-order limit, double-click
    token), as user_lock_for_update does for an account: a PostgreSQL advisory
    lock held until the transaction ends. Nothing elsewhere (no row to lock)."""
    if connection.vendor != "postgresql":
        return
    digest = hashlib.sha256(b"orders.guest:" + email.encode()).digest()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s)",
            [int.from_bytes(digest[:8], "big", signed=True)],
        )


def order_lock_for_update(
    *, number: str, then: Sequence[Write] = (), lines_extra: str | None = None
) -> Locked[Order]:
    """The order, its row locked (the notify's hot path: one plain statement).

    With `then` (PostgreSQL only; config/lib/db_fold.py `row_lock_then`): writes
    that read the locked row (`LOCKED`) and run after the lock in the same
    statement, and with `lines_extra` the order's lines read with it (each with
    that SQL expression's value). Lock order: Order, then what the writes touch.
    """
    if then:
        children = None if lines_extra is None else (OrderLine, "order_id", lines_extra)
        return row_lock_then(Order, then=then, children=children, number=number)
    order = row_get(Order, for_update=True, number=number)
    return Locked(order, [], order is not None, [])


def order_lock_for_update_by_id(
    *, order_id: int, skip_locked: bool = False
) -> Order | None:
    return (
        Order.objects.select_for_update(skip_locked=skip_locked)
        .filter(pk=order_id)
        .order_by("pk")
        .first()
    )


def refund_lock_for_update(*, refund_id: int) -> Refund | None:
    return (
        Refund.objects.select_for_update().filter(pk=refund_id).order_by("pk").first()
    )
