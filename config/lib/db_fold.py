"""Statements that fold several steps of the paid path into one (config/lib/db.py's
helpers, split off for length): a row locked together with the writes that follow
its lock (`row_lock_then`), and rows inserted from values without building models
first (`insert_write_rows`, `row_insert_given`). PostgreSQL for the first; both take field names and the
model's own columns, never user-supplied SQL, and run through `execute`
(config/lib/prepared.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Generic

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.utils import timezone

from config.lib.db import (
    M,
    Write,
    _convert,
    _converters,
    _db,
    _field,
    _insert_plan,
    _insert_write,
    _passes,
    _quote,
    _select_list,
    _where,
    execute,
    insert_values,
    row_insert,
    write_ctes,
)
from config.lib.db_load import row_loaded

LOCKED = "locked"  # the CTE `row_lock_then`'s writes read the locked row from
# A column of LOCKED: true when the row locked is the version this statement's
# snapshot holds (nobody changed it while the lock was awaited).
LOCKED_FRESH = "kq_fresh"


@dataclass(frozen=True)
class Locked(Generic[M]):
    """What `row_lock_then` found: the row (None: none matched), the writes'
    answers, whether the row was `fresh` (`LOCKED_FRESH`), and the `children`
    read with it, each with the value of the caller's SQL expression."""

    row: M | None
    answers: list[Any]
    fresh: bool
    children: list[tuple[Any, Any]]


def row_lock_then(
    model: type[M],
    *,
    then: Sequence[Write],
    children: tuple[type[Model], str, str] | None = None,
    **where: Any,
) -> Locked[M]:
    """PostgreSQL: `row_get(for_update=True)` and the writes `then`, one statement.

    The row is locked first (a CTE named `LOCKED`); each write reads it
    (`... FROM "locked"`), so none can run before the lock is held, and a
    write given no row writes nothing. The writes are the CTEs `w0`, `w1`...
    in order; a later one may read an earlier one's rows. `children`: (model,
    its foreign key's attname, an SQL expression) also reads the locked row's
    children as this statement's snapshot has them (so, when the row is not
    fresh, perhaps older than the lock), each with the expression's value
    (which may read the writes; qualify the child's columns with its table).
    The row is returned as the lock left it (the latest version, as `row_get`
    would return it).
    """
    db = _db()
    assert db.vendor == "postgresql"  # noqa: S101 (callers check; CTEs that write)
    columns, attnames = _select_list(model)
    condition, params = _where(model, where, db)
    pk = model._meta.pk
    assert pk is not None  # noqa: S101
    table, pk_column = _quote(model._meta.db_table), _quote(pk.column)
    parts = [
        f"{LOCKED} AS (SELECT {columns}, xmin = (SELECT k.xmin FROM {table} k"  # noqa: S608
        f" WHERE k.{pk_column} = {table}.{pk_column}) AS {LOCKED_FRESH}"
        f" FROM {table} WHERE {condition} ORDER BY {pk_column} LIMIT 1 FOR UPDATE)"
    ]
    ctes, answers, written = write_ctes(then)
    parts.extend(ctes)
    params.extend(written)
    selected = [f"{LOCKED}.*", *answers]
    joined = ""
    if children is not None:
        child, fk, extra = children
        child_columns, joined = _children_sql(child, fk, pk_column)
        selected.append(child_columns)
        selected.append(extra)
    with db.cursor() as cursor:
        execute(
            cursor,
            f"WITH {', '.join(parts)} SELECT {', '.join(selected)}"  # noqa: S608
            f" FROM {LOCKED}{joined}",
            params,
        )
        rows = cursor.fetchall()
    if not rows:
        return Locked(None, [], False, [])
    width = len(attnames)
    first = rows[0]
    found = row_loaded(model, attnames, _convert(first[:width], _converters(model), db))
    ended = width + 1 + len(answers)
    read: list[tuple[Any, Any]] = []
    if children is not None:
        _child_columns, child_attnames = _select_list(child)
        child_converters = _converters(child)
        read = [
            (
                row_loaded(
                    child, child_attnames, _convert(row[ended:-1], child_converters, db)
                ),
                row[-1],
            )
            for row in rows
            if row[ended] is not None  # LEFT JOIN: no child
        ]
    return Locked(found, list(first[width + 1 : ended]), bool(first[width]), read)


@cache
def _children_sql(child: type[Model], fk: str, pk_column: str) -> tuple[str, str]:
    """`row_lock_then`'s select list of the children's columns and its join
    (per child model: the same text every time)."""
    child_table = _quote(child._meta.db_table)
    child_pk = child._meta.pk
    assert child_pk is not None  # noqa: S101
    columns = ", ".join(
        f"{child_table}.{_quote(f.column)}" for f in child._meta.concrete_fields
    )
    joined = (
        f" LEFT JOIN {child_table} ON {child_table}.{_quote(_field(child, fk).column)}"
        f" = {LOCKED}.{pk_column} ORDER BY {child_table}.{_quote(child_pk.column)}"
    )
    return columns, joined


def insert_write_rows(
    model: type[Model], rows: Sequence[Mapping[str, Any]], *, once: bool = False
) -> Write:
    """`insert_write` for new rows given as {attname: value} (`order_id`, not
    `order`), without building model instances (the paid path's events and
    email row). A field left out takes what building the model would give it
    (its default, a callable one called per row); `auto_now(_add)` fields
    get the time, given or not (as `pre_save` gives it);
    a model with any other `pre_save` work is built and `insert_values` asked.
    Raises TypeError for a name that is no field's attname.
    """
    columns, plan = _rows_plan(model)
    params: list[Any] = []
    for given in rows:
        unknown = given.keys() - plan.keys()
        if unknown:
            raise TypeError(f"{model.__name__} has no field {sorted(unknown)[0]}")
        if not columns:  # fields with pre_save work of their own
            columns, values = insert_values(model(**given))
            params.extend(values)
            continue
        values = _row_values(plan, given)
        params += _row_params(plan, values, _db)
    return _insert_write(model, columns, params, len(rows), once=once)


def row_insert_given(model: type[M], given: Mapping[str, Any]) -> M:
    """`row_insert(model(**given))` (`given` by attname) without building the
    model before the INSERT: the row's values as `insert_write_rows` takes them
    (defaults, `auto_now(_add)`), then the instance built from them and its new
    primary key as a row read back is (`Model.from_db`: saved, not adding).
    A model with other `pre_save` work goes through `row_insert` as it is.
    Raises TypeError for a name that is no field's attname.
    """
    columns, plan = _rows_plan(model)
    unknown = given.keys() - plan.keys()
    if unknown:
        raise TypeError(f"{model.__name__} has no field {sorted(unknown)[0]}")
    if not columns:
        return row_insert(model(**given))
    db = _db()
    values = _row_values(plan, given)
    row = dict(zip(plan, values, strict=True))
    write = _insert_write(model, columns, _row_params(plan, values, _db), 1, once=False)
    with db.cursor() as cursor:
        execute(cursor, write.sql, write.params)
        (row[_pk_attname(model)],) = cursor.fetchone()
    _columns, attnames = _select_list(model)
    return row_loaded(model, attnames, [row[name] for name in attnames])


_Plan = dict[str, tuple["Field[Any, Any]", "type | None", Any, "type | None"]]


def _row_values(plan: _Plan, given: Mapping[str, Any]) -> list[Any]:
    """A new row's values in `plan`'s order, as building the model gives them: the
    time for `auto_now(_add)` (given or not, as `pre_save` does), else the given
    value, else the field's default (a callable one called). A comprehension: no
    call per value where none is needed."""
    return [
        timezone.now()
        if default is _NOW
        else given[attname]
        if attname in given
        else field.get_default()
        if default is _CALL
        else default
        for attname, (field, _native, default, _plain) in plan.items()
    ]


def _row_params(
    plan: _Plan, values: list[Any], db: Callable[[], BaseDatabaseWrapper]
) -> list[Any]:
    """The values as the INSERT's parameters: `_passes`, without its call for a
    plain str/int/bool or a None; `db()` only for a value to convert."""
    return [
        value
        if value.__class__ is plain_type
        or (value is None and native is not None)
        or _passes(value, native)
        else field.get_db_prep_save(value, db())
        for value, (field, native, _default, plain_type) in zip(
            values, plan.values(), strict=True
        )
    ]


def _pk_attname(model: type[Model]) -> str:
    pk = model._meta.pk
    assert pk is not None  # noqa: S101 (every concrete model has one)
    return pk.attname


_NOW, _CALL = object(), object()  # `_rows_plan`: the time, the field's callable default
# Native types whose values (of that exact class) `_passes` always lets through.
_PLAIN_TYPES = (str, int, bool)


@cache
def _rows_plan(
    model: type[Model],
) -> tuple[list[str], _Plan]:
    """Per model: the INSERT's quoted columns (empty: build the model, see
    `insert_write_rows`), and per attname its field, native type (`_NATIVE`),
    default (`_NOW`, `_CALL` or the value every row gets) and the native type
    when it is one of `_PLAIN_TYPES` (else None)."""
    columns, insert_plan = _insert_plan(model, ())
    plan: _Plan = {}
    plain = True
    for attname, field, native, pre_save in insert_plan:
        if pre_save:
            plain = plain and isinstance(field, models.DateTimeField)
            default: Any = _NOW
        elif field.has_default() and callable(field.default):
            default = _CALL
        else:
            default = field.get_default()
        plain_type = native if native in _PLAIN_TYPES else None
        plan[attname] = (field, native, default, plain_type)
    return (list(columns) if plain else []), plan
