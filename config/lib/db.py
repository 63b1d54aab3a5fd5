"""Small SQL helpers the ORM does not offer, and lean ones for the paid path.

The ORM spends about 0.4 ms of Python building each statement, three times what
PostgreSQL spends running it (docs/PERFORMANCE.md). The paid path (checkout,
notify) runs a dozen statements per request, so its hot statements go through
these helpers instead: plain parameterised SQL built from the model's own
field and column names, values prepared by the model's own fields (so they
work on SQLite as on PostgreSQL), rows turned back into model instances with
`Model.from_db` only where a model is wanted. They take field names (or
attnames such as `order_id`), never user-supplied SQL. Their statements run
through `execute` (config/lib/prepared.py): prepared statements on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any, Literal, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model

from config.lib.db_load import row_loaded
from config.lib.prepared import execute as execute  # re-exported for call sites

M = TypeVar("M", bound=Model)


def _db() -> BaseDatabaseWrapper:
    # The connection itself: `django.db.connection` is a proxy that looks the
    # connection up again on every attribute access.
    return connections[DEFAULT_DB_ALIAS]


@cache
def _quote(name: str) -> str:
    return str(_db().ops.quote_name(name))


@cache
def _insert_fields(model: type[Model]) -> tuple[Field[Any, Any], ...]:
    return tuple(f for f in model._meta.concrete_fields if not f.primary_key)


@cache
def _select_list(model: type[Model]) -> tuple[str, tuple[str, ...]]:
    """The model's concrete columns as a SELECT list, and their attnames (from_db order)."""
    fields = model._meta.concrete_fields
    return (
        ", ".join(_quote(f.column) for f in fields),
        tuple(f.attname for f in fields),
    )


def _field(model: type[Model], name: str) -> Field[Any, Any]:
    if name == "pk":
        pk = model._meta.pk
        assert pk is not None  # noqa: S101 (every concrete model has one)
        return pk
    field = model._meta.get_field(name)
    assert isinstance(field, Field)  # noqa: S101 (a column, not a reverse relation)
    return field


def _where(
    model: type[Model], where: Mapping[str, Any], db: BaseDatabaseWrapper
) -> tuple[str, list[Any]]:
    """`col = %s` for a value, `col IN (...)` for a list, tuple or set, `IS NULL` for None."""
    parts: list[str] = []
    params: list[Any] = []
    for name, value in where.items():
        column, field, native = _column(model, name)
        if isinstance(value, list | tuple | set | frozenset):
            values = list(value)
            if not values:
                parts.append("1 = 0")  # IN () matches nothing
                continue
            parts.append(f"{column} IN ({', '.join(['%s'] * len(values))})")
            params.extend(
                v if _passes(v, native) else field.get_db_prep_value(v, db)
                for v in values
            )
        elif value is None:
            parts.append(f"{column} IS NULL")
        else:
            parts.append(f"{column} = %s")
            params.append(
                value if _passes(value, native) else field.get_db_prep_value(value, db)
            )
    return " AND ".join(parts) or "1 = 1", params


@cache
def _column(model: type[Model], name: str) -> tuple[str, Field[Any, Any], type | None]:
    """A field's quoted column, the field, and the type its values may go to
    psycopg2 as they are (`_native_type`; None: always through the field)."""
    field = _field(model, name)
    return _quote(field.column), field, _native_type(field)


def _native_type(field: Field[Any, Any]) -> type | None:
    """The type a stock field hands to PostgreSQL unchanged (see `_NATIVE`);
    None elsewhere (SQLite converts every value) and for any other field."""
    if _db().vendor != "postgresql":
        return None
    target = field.target_field if isinstance(field, models.ForeignKey) else field
    return _NATIVE.get(type(target))


def _passes(value: Any, native: type | None) -> bool:
    """Whether `value` is what its field's own preparation would hand psycopg2
    unchanged: None, or of the native type (any str for a text field: its
    `to_python` keeps a str subclass as it is), a finite Decimal, an aware
    datetime."""
    if native is None:
        return False
    kind = type(value)
    if value is None or kind is native:
        return (kind is not Decimal or value.is_finite()) and (
            kind is not dt.datetime or value.tzinfo is not None
        )
    return native is str and isinstance(value, str)


def insert_values(
    obj: Model, *, skip: Sequence[str] = ()
) -> tuple[list[str], list[Any]]:
    """Quoted columns and prepared values of a new `obj`, its pk and `skip` left out.

    Field defaults were applied when `obj` was built; `pre_save` fills
    auto_now(_add) as `save()` would. A value of the type a stock field stores
    as it is (see `_insert_plan`) goes as it is; any other value, and every
    value of another field (JSON, UUID, encrypted...), through the field's own
    `get_db_prep_save`.
    """
    columns, plan = _insert_plan(type(obj), tuple(skip))
    db: BaseDatabaseWrapper | None = None  # looked up only for a value to convert
    values: list[Any] = []
    attrs = obj.__dict__
    for attname, field, native, pre_save in plan:
        if pre_save:
            value = field.pre_save(obj, True)
        else:
            try:
                value = attrs[attname]
            except KeyError:  # deferred: the descriptor knows
                value = getattr(obj, attname)
        if _passes(value, native):
            values.append(value)
        else:
            db = db or _db()
            values.append(field.get_db_prep_save(value, db))
    return list(columns), values


# Stock field classes whose `get_db_prep_save` hands a value of this exact type
# to PostgreSQL unchanged (psycopg2 adapts it): checked by class identity, so
# a subclass with its own conversion (an encrypted field...) is not in it.
_NATIVE: dict[type[Field[Any, Any]], type] = {
    **dict.fromkeys(
        (
            models.CharField,
            models.TextField,
            models.EmailField,
            models.SlugField,
            models.URLField,
        ),
        str,
    ),
    **dict.fromkeys(
        (
            models.IntegerField,
            models.BigIntegerField,
            models.SmallIntegerField,
            models.PositiveIntegerField,
            models.PositiveBigIntegerField,
            models.PositiveSmallIntegerField,
            models.AutoField,  # a foreign key's target
            models.BigAutoField,
            models.SmallAutoField,
        ),
        int,
    ),
    models.BooleanField: bool,
    models.DecimalField: Decimal,
    models.DateTimeField: dt.datetime,  # aware only (naive: Django warns, converts)
}


@cache
def _insert_plan(
    model: type[Model], skip: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[tuple[str, Any, type | None, bool], ...]]:
    """Per model: the INSERT's quoted columns, and per field its attname, the
    field, the type passed as it is (None: always convert) and whether
    `pre_save` has work to do (auto_now, auto_now_add, file fields)."""
    fields = [
        f for f in _insert_fields(model) if f.attname not in skip and f.name not in skip
    ]
    postgres = _db().vendor == "postgresql"  # elsewhere values are converted
    plan = []
    for f in fields:
        target = f.target_field if isinstance(f, models.ForeignKey) else f
        native = _NATIVE.get(type(target)) if postgres else None
        pre_save = type(f).pre_save is not Field.pre_save and (
            not isinstance(f, models.DateField)  # DateTimeField too
            or bool(f.auto_now or f.auto_now_add)
        )
        plan.append((f.attname, f, native, pre_save))
    return tuple(_quote(f.column) for f in fields), tuple(plan)


def _saved(obj: Model, pk: Any) -> None:
    obj.pk = pk
    obj._state.adding = False
    obj._state.db = DEFAULT_DB_ALIAS


def row_insert_once(obj: Model, *, unique: Sequence[str] = ()) -> bool:
    """INSERT `obj` unless a unique key already holds its values; True when written.

    `INSERT ... ON CONFLICT [(unique)] DO NOTHING RETURNING pk`: where a duplicate
    is expected (a gateway's retried notify, a second email of one kind), the
    unique key answers in the same statement, with no SELECT first and no
    IntegrityError (nor the savepoint catching it would need) inside the caller's
    transaction. Without `unique`, any unique key (a partial one too) counts.
    On success `obj` gets its primary key, as `create()` would give it.
    """
    return _insert(obj, on_conflict=True, unique=unique)


def row_insert(obj: M) -> M:
    """INSERT `obj` in one statement (`create()` without the ORM's query building)."""
    _insert(obj, on_conflict=False, unique=())
    return obj


def _insert(obj: Model, *, on_conflict: bool, unique: Sequence[str]) -> bool:
    opts = obj._meta
    columns, values = insert_values(obj)
    conflict = ""
    if on_conflict:
        target = (
            f" ({', '.join(_quote(_field(type(obj), n).column) for n in unique)})"
            if unique
            else ""
        )
        conflict = f" ON CONFLICT{target} DO NOTHING"
    assert opts.pk is not None  # noqa: S101
    with _db().cursor() as cursor:
        execute(
            cursor,
            f"INSERT INTO {_quote(opts.db_table)}"  # noqa: S608 (names from the model)
            f" ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
            f"{conflict} RETURNING {_quote(opts.pk.column)}",
            values,
        )
        row = cursor.fetchone()
    if row is None:
        return False
    _saved(obj, row[0])
    return True


def rows_insert(objs: Iterable[Model]) -> None:
    """INSERT several new rows of one model in one statement; each gets its pk."""
    objs = list(objs)
    if not objs:
        return
    opts = objs[0]._meta
    assert opts.pk is not None  # noqa: S101
    params: list[Any] = []
    columns: list[str] = []
    for obj in objs:
        columns, values = insert_values(obj)
        params.extend(values)
    row = f"({', '.join(['%s'] * len(columns))})"
    with _db().cursor() as cursor:
        execute(
            cursor,
            f"INSERT INTO {_quote(opts.db_table)} ({', '.join(columns)})"  # noqa: S608
            f" VALUES {', '.join([row] * len(objs))}"
            f" RETURNING {_quote(opts.pk.column)}",
            params,
        )
        # RETURNING gives the rows in VALUES order on PostgreSQL and SQLite alike.
        for obj, (pk,) in zip(objs, cursor.fetchall(), strict=True):
            _saved(obj, pk)


def rows_get(
    model: type[M],
    *,
    for_update: bool = False,
    limit: int | None = None,
    **where: Any,
) -> list[M]:
    """The rows matching `where` (see `_where`) as model instances, by primary key.

    `for_update` locks them (`FOR UPDATE`, where the database has row locks);
    callers keep the global lock order (orders/locks.py).
    """
    db = _db()
    columns, attnames = _select_list(model)
    condition, params = _where(model, where, db)
    assert model._meta.pk is not None  # noqa: S101
    sql = (
        f"SELECT {columns} FROM {_quote(model._meta.db_table)}"  # noqa: S608
        f" WHERE {condition} ORDER BY {_quote(model._meta.pk.column)}"
    )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    if for_update and db.features.has_select_for_update:
        sql += " FOR UPDATE"
    with db.cursor() as cursor:
        execute(cursor, sql, params)
        rows = cursor.fetchall()
    converters = _converters(model)
    return [row_loaded(model, attnames, _convert(row, converters, db)) for row in rows]


def rows_get_after(
    model: type[M],
    *,
    ctes: str,
    cte_params: Sequence[Any],
    extra: str,
    **where: Any,
) -> list[tuple[M, Any]]:
    """`rows_get` in one statement after the caller's CTEs (PostgreSQL: a
    data-modifying one runs once, to completion), each row with the value of the
    SQL expression `extra` (which may read the CTEs; qualify the model's columns
    with its table). `ctes`: `name AS (...)[, ...]`, their values `cte_params`.
    The rows are as the statement started: a CTE's changes are not in them."""
    db = _db()
    columns, attnames = _select_list(model)
    condition, params = _where(model, where, db)
    assert model._meta.pk is not None  # noqa: S101
    with db.cursor() as cursor:
        execute(
            cursor,
            f"WITH {ctes} SELECT {columns}, {extra}"  # noqa: S608
            f" FROM {_quote(model._meta.db_table)} WHERE {condition}"
            f" ORDER BY {_quote(model._meta.pk.column)}",
            [*cte_params, *params],
        )
        rows = cursor.fetchall()
    converters = _converters(model)
    return [
        (
            row_loaded(model, attnames, _convert(row[:-1], converters, db)),
            row[-1],
        )
        for row in rows
    ]


def row_get(model: type[M], *, for_update: bool = False, **where: Any) -> M | None:
    """The first row (by primary key) matching `where`, or None."""
    found = rows_get(model, for_update=for_update, limit=1, **where)
    return found[0] if found else None


@cache
def _converters(model: type[Model]) -> tuple[tuple[int, Any, Any], ...]:
    """The database backend's and the fields' value converters (what the ORM applies
    to each fetched value: JSON decoding, SQLite's dates and decimals...)."""
    out = []
    db = _db()
    field: Any
    for i, field in enumerate(model._meta.concrete_fields):
        expression = field.get_col(model._meta.db_table)
        for convert in [
            *db.ops.get_db_converters(expression),
            *field.get_db_converters(db),
        ]:
            out.append((i, convert, expression))
    return tuple(out)


def _convert(
    row: Sequence[Any],
    converters: Sequence[tuple[int, Any, Any]],
    db: BaseDatabaseWrapper,
) -> Any:
    if not converters:
        return row
    values = list(row)
    for i, convert, expression in converters:
        values[i] = convert(values[i], expression, db)
    return values


def rows_update(model: type[Model], where: Mapping[str, Any], **values: Any) -> int:
    """UPDATE the rows matching `where` (see `_where`) to `values`; returns the row count.

    Values are plain values prepared by their fields (no F() expressions; callers
    hold the row lock and computed them). `auto_now` is not applied: pass
    `updated_at` like `QuerySet.update()` callers do.
    """
    return int(writes_run([update_write(model, where, **values)])[0])


@dataclass(frozen=True)
class Write:
    """One data-modifying statement for `writes_run`, and what it answers:
    its row count (`count`) or the primary key it wrote, or None (`pk`: a
    one-row INSERT ending in `RETURNING <pk>`). In `row_lock_then` (db_fold.py) also
    `rows`: a statement with a RETURNING (or a SELECT) of its own, answering
    how many rows it gave."""

    sql: str
    params: list[Any]
    answer: Literal["count", "pk", "rows"] = "count"


def write_ctes(writes: Sequence[Write]) -> tuple[list[str], list[str], list[Any]]:
    """The writes as data-modifying CTEs `w0`, `w1`... (PostgreSQL), the scalar
    subquery reading each one's answer (`count`: rows written; `pk`: the key
    its RETURNING gave; `rows`: how many rows its own RETURNING gave), and
    their parameters in order. For `writes_run` and `row_lock_then`."""
    parts: list[str] = []
    answers: list[str] = []
    params: list[Any] = []
    for i, write in enumerate(writes):
        returning = " RETURNING 1" if write.answer == "count" else ""
        parts.append(f"w{i} AS ({write.sql}{returning})")
        answers.append(
            f"(SELECT {'*' if write.answer == 'pk' else 'count(*)'} FROM w{i})"  # noqa: S608
        )
        params.extend(write.params)
    return parts, answers, params


def update_write(model: type[Model], where: Mapping[str, Any], **values: Any) -> Write:
    """`rows_update` as a `Write` (its answer: the row count)."""
    db = _db()
    head, plan = _update_plan(model, tuple(values))
    # `_passes`, without its call for a plain str or int (comprehension: no call
    # per value where none is converted).
    params = [
        value
        if (value.__class__ is native and (native is str or native is int))
        or _passes(value, native)
        else field.get_db_prep_save(value, db)
        for value, (field, native) in zip(values.values(), plan, strict=True)
    ]
    condition, where_params = _where(model, where, db)
    return Write(f"{head} WHERE {condition}", [*params, *where_params])


@lru_cache(maxsize=256)  # bounded: per model and set of names
def _update_plan(
    model: type[Model], names: tuple[str, ...]
) -> tuple[str, tuple[tuple[Field[Any, Any], type | None], ...]]:
    """`update_write`'s `UPDATE ... SET ...` text and per name its field and
    native type (`_column`)."""
    columns = [_column(model, name) for name in names]
    sets = ", ".join(f"{column} = %s" for column, _field, _native in columns)
    return (
        f"UPDATE {_quote(model._meta.db_table)} SET {sets}",  # noqa: S608
        tuple((field, native) for _column_name, field, native in columns),
    )


def insert_write(objs: Sequence[Model], *, once: bool = False) -> Write:
    """INSERT new rows of one model as a `Write`; with `once`, `ON CONFLICT DO
    NOTHING` (see `row_insert_once`). One object: its answer is the pk written
    (None on a conflict; the caller sets it); several: the count (their pks are
    not read back)."""
    params: list[Any] = []
    columns: list[str] = []
    for obj in objs:
        columns, values = insert_values(obj)
        params.extend(values)
    return _insert_write(type(objs[0]), columns, params, len(objs), once=once)


def _insert_write(
    model: type[Model],
    columns: Sequence[str],
    params: list[Any],
    rows: int,
    *,
    once: bool,
) -> Write:
    sql = _insert_sql(model, tuple(columns), rows, once)
    return Write(sql, params, "pk" if rows == 1 else "count")


@lru_cache(maxsize=256)  # bounded: callers' row counts vary
def _insert_sql(
    model: type[Model], columns: tuple[str, ...], rows: int, once: bool
) -> str:
    """`_insert_write`'s text (built once per model, columns, rows and `once`)."""
    pk = model._meta.pk
    assert pk is not None  # noqa: S101
    row = f"({', '.join(['%s'] * len(columns))})"
    conflict = " ON CONFLICT DO NOTHING" if once else ""
    sql = (
        f"INSERT INTO {_quote(model._meta.db_table)} ({', '.join(columns)})"  # noqa: S608
        f" VALUES {', '.join([row] * rows)}{conflict}"
    )
    return f"{sql} RETURNING {_quote(pk.column)}" if rows == 1 else sql


def writes_run(writes: Sequence[Write]) -> list[Any]:
    """Run the writes in order and return their answers.

    On PostgreSQL several writes are one statement (data-modifying CTEs): one
    round trip. They then share one snapshot: none sees another's rows, so the
    caller never gives two writes that touch the same rows, nor one that must
    see another's effect (foreign keys are checked at commit: Django makes them
    deferrable). Elsewhere they run one by one.
    """
    db = _db()
    with db.cursor() as cursor:
        if len(writes) > 1 and db.vendor == "postgresql":
            parts, answers, params = write_ctes(writes)
            execute(
                cursor, f"WITH {', '.join(parts)} SELECT {', '.join(answers)}", params
            )
            return list(cursor.fetchone())
        results: list[Any] = []
        for write in writes:
            execute(cursor, write.sql, write.params)
            if write.answer == "pk":
                row = cursor.fetchone()
                results.append(row[0] if row else None)
            else:
                results.append(int(cursor.rowcount))
        return results
