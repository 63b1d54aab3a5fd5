"""The checkout's new order written: the order, its lines and `placed` event, the
codes reserved (orders/services/checkout.py `order_place`, split off for length).

On PostgreSQL an order of one line is one statement of data-modifying CTEs,
its values from dicts (config/lib/db_row.py); a bundle's, or another
database's, one statement per row from models.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model
from django.utils import timezone, translation

from catalog.models import Sku
from config.lib.db import execute, insert_values, row_insert
from config.lib.db_row import model_loaded, row_values
from fulfillment.services import (
    card_codes_reserve,
    card_codes_reserve_check,
    card_codes_reserve_sql,
)
from orders.models import Order, OrderEvent, OrderLine
from orders.pricing import Quote, QuoteLine
from risk.models import RiskEvaluation


def lines_reserve(lines: Iterable[OrderLine], *, now: dt.datetime) -> None:
    """Take free codes for every card-code line, inside the caller's transaction.

    Raises: OutOfStockError (the caller rolls back). Top-ups reserve nothing.
    """
    for line in lines:
        if line.delivery == Sku.Delivery.CARD_CODE:
            card_codes_reserve(
                sku=line.sku, order_line_id=line.id, quantity=line.quantity, now=now
            )


def order_write(
    *,
    order: dict[str, Any],
    quote: Quote,
    placed: dict[str, Any],
    now: dt.datetime,
    evaluation: RiskEvaluation | None = None,
) -> tuple[Order, int | None]:
    """Write the new order (`order`: its values by attname), its lines and its
    `placed` event (values but the order), and reserve the card-code lines'
    codes, inside the caller's transaction; returns the order, and the id of
    `evaluation` when it was written too (with the order's id), else None.

    On PostgreSQL an order of one line (no bundle) is one statement: the order,
    line, event (and evaluation) INSERTs and the reserving UPDATE as
    data-modifying CTEs (`card_codes_reserve_sql`), where the ORM took five
    round trips; their values come from dicts, and the order is built once,
    written (config/lib/db_row.py). Otherwise one statement each, from models,
    and no evaluation.
    Raises: OutOfStockError (the caller rolls back).
    """
    db = connections[DEFAULT_DB_ALIAS]  # once: each `connection.` is a look-up
    if db.vendor != "postgresql" or quote.line.components:
        built = row_insert(Order(**order))
        lines_reserve(_lines_create(order=built, quote=quote), now=now)
        row_insert(OrderEvent(order=built, **placed))
        return built, None
    item = quote.line
    sku = item.sku
    stamp = timezone.now()  # the rows' created_at and updated_at
    order_columns, params, order_attrs = row_values(Order, order, now=stamp, db=db)
    line_columns, line_values, _attrs = row_values(
        OrderLine,
        {"sku_id": sku.id, **_line_values(item)},
        skip=_ORDER,
        now=stamp,
        db=db,
    )
    event_columns, event_values, _attrs = row_values(
        OrderEvent, placed, skip=_ORDER, now=stamp, db=db
    )
    params += line_values
    params += event_values
    if evaluation is not None:
        # The checkout's risk evaluation, linked here: no INSERT after the commit.
        eval_columns, eval_values = insert_values(evaluation, skip=_ORDER)
        params += eval_values
    else:
        eval_columns = []
    reserving = sku.delivery == Sku.Delivery.CARD_CODE
    if reserving:
        reserve, reserve_params = card_codes_reserve_sql(
            sku_id=sku.id,
            quantity=item.quantity,
            now=now,
            line_sql="(SELECT id FROM l)",
        )
        params += reserve_params
    else:
        reserve = ""
    sql = _order_write_sql(
        tuple(order_columns),
        tuple(line_columns),
        tuple(event_columns),
        tuple(eval_columns),
        reserve,
    )
    with db.cursor() as cursor:
        execute(cursor, sql, params)
        order_id, _line_id, reserved, evaluation_id = cursor.fetchone()
    if reserving:
        card_codes_reserve_check(sku=sku, quantity=item.quantity, reserved=reserved)
    return (
        model_loaded(Order, order_attrs, pk=order_id, db=db.alias),
        int(evaluation_id) if evaluation_id is not None else None,
    )


_ORDER = ("order",)  # the line's, event's and evaluation's: (SELECT id FROM o)


@functools.lru_cache(maxsize=64)
def _order_write_sql(
    order_columns: tuple[str, ...],
    line_columns: tuple[str, ...],
    event_columns: tuple[str, ...],
    eval_columns: tuple[str, ...],
    reserve: str,
) -> str:
    """`_order_write`'s statement (no evaluation: `eval_columns` empty; no
    reservation: `reserve` empty). Kept: a handful of texts per process (the
    reservation's differs only by its LIMIT, the quantity)."""
    sql = (
        f"WITH o AS (INSERT INTO {table_quoted(Order)} ({', '.join(order_columns)})"  # noqa: S608
        f" VALUES ({_marks(order_columns)}) RETURNING id),"
        f' l AS (INSERT INTO {table_quoted(OrderLine)} ("order_id", {", ".join(line_columns)})'
        f" VALUES ((SELECT id FROM o), {_marks(line_columns)}) RETURNING id),"
        f' e AS (INSERT INTO {table_quoted(OrderEvent)} ("order_id", {", ".join(event_columns)})'
        f" VALUES ((SELECT id FROM o), {_marks(event_columns)}))"
    )
    if eval_columns:
        sql += (
            f', v AS (INSERT INTO {table_quoted(RiskEvaluation)} ("order_id", {", ".join(eval_columns)})'  # noqa: S608
            f" VALUES ((SELECT id FROM o), {_marks(eval_columns)}) RETURNING id)"
        )
    if reserve:
        sql += f", r AS ({reserve} RETURNING id)"
    sql += " SELECT (SELECT id FROM o), (SELECT id FROM l), "
    sql += "(SELECT count(*) FROM r)" if reserve else "0"
    sql += ", (SELECT id FROM v)" if eval_columns else ", NULL"
    return sql


@functools.cache
def table_quoted(model: type[Model]) -> str:
    """The model's quoted table name (the default database's, fixed per process)."""
    return str(connections[DEFAULT_DB_ALIAS].ops.quote_name(model._meta.db_table))


def _marks(columns: Sequence[str]) -> str:
    return ", ".join(["%s"] * len(columns))


def _line(order: Order, item: QuoteLine, parent: OrderLine | None) -> OrderLine:
    return OrderLine(order=order, parent=parent, sku=item.sku, **_line_values(item))


def _line_values(item: QuoteLine) -> dict[str, Any]:
    """A line's values but its order, parent and SKU, by attname."""
    sku = item.sku
    product = sku.product
    return {
        "delivery": sku.delivery,
        "product_name": product.name,
        "sku_name": sku.name,
        "validity_text": _snapshot_text(sku),
        "redeem_instructions": product.redeem_instructions,
        "recharge_account": item.recharge_account,
        "quantity": item.quantity,
        "unit_price": item.unit_price,
        "amount": item.amount,
    }


def _lines_create(*, order: Order, quote: Quote) -> list[OrderLine]:
    """Write the quote's lines; returns the ones that get delivered."""
    top = _line(order, quote.line, None)
    top.save(force_insert=True)
    if not quote.line.components:
        return [top]
    return OrderLine.objects.bulk_create(
        [_line(order, part, top) for part in quote.line.components]
    )


def _snapshot_text(sku: Sku) -> str:
    # Stored once and shown to everyone: in the shop's language, not the buyer's
    # (most buyers' already: then no switching there and back).
    if translation.get_language() == settings.LANGUAGE_CODE:
        return sku.validity_text
    with translation.override(settings.LANGUAGE_CODE):
        return sku.validity_text
