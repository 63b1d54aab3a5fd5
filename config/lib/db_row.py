"""One new row from its values, and model instances without `Model.__init__`'s
per-field work (config/lib/db.py's helpers, for the checkout's hot path).

`Model(**kwargs)` looks every field up in the keyword arguments and asks the
others for their default (~4 Python calls a field), and `insert_values` then
reads each value back: for the checkout's order, line, event and trade that was
~600 Python calls per checkout (docs/PERFORMANCE.md, "Paid path, session 8").
Here a model's fields are walked once per process (`_plan`), and a row is made
from a dict:

- `row_values`: the INSERT's columns and prepared values of a new row given as
  {attname: value}, and every field's value as building the model would give
  it (defaults, a callable one called; `auto_now(_add)` the time);
- `model_loaded`: the instance `from_db` would give for that row once written
  (every concrete field's value and the pk: no deferred field);
- `model_new`: the unsaved instance `Model(**given)` gives, for attnames only.

None of them sends `pre_init`/`post_init`: no model they are used for has a
receiver (Django's own are for image fields and generic foreign keys); a model
with `pre_save` work other than a timestamp's goes through the model itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from functools import cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.db.models.base import ModelState
from django.utils import timezone

from config.lib.db import M, _db, _insert_plan, _passes, insert_values

_NOW, _CALL = object(), object()  # a default: the row's time; the field's callable


_Plan = tuple[tuple[str, "Field[Any, Any]", type | None, Any, Any], ...]
# Prepared defaults kept in the plan: values nobody can change in place.
_IMMUTABLE = (str, int, bool, Decimal, dt.datetime, type(None))


@cache
def _plan(
    model: type[Model], skip: tuple[str, ...]
) -> tuple[tuple[str, ...], _Plan, frozenset[str]]:
    """Per model and skipped names: the INSERT's quoted columns (empty: the
    model has `pre_save` work of its own, see `row_values`), per field its
    attname, the field, the type passed as it is (`_NATIVE`), its default
    (`_NOW`, `_CALL` or the value every row gets) and that value prepared
    (`_CALL` when it is not kept: prepared per row), and the attnames."""
    columns, insert_plan = _insert_plan(model, skip)
    plan = []
    plain = True
    for attname, field, native, pre_save in insert_plan:
        prepared: Any = _CALL
        if pre_save:
            plain = plain and isinstance(field, models.DateTimeField)
            default: Any = _NOW
        elif field.has_default() and callable(field.default):
            default = _CALL
        else:
            default = field.get_default()
            value = (
                default
                if _passes(default, native)
                else field.get_db_prep_save(default, _db())
            )
            if isinstance(value, _IMMUTABLE):
                prepared = value
        plan.append((attname, field, native, default, prepared))
    return (
        (columns if plain else ()),
        tuple(plan),
        frozenset(p[0] for p in plan),
    )


def row_values(
    model: type[Model],
    given: Mapping[str, Any],
    *,
    skip: Sequence[str] = (),
    now: dt.datetime | None = None,
    db: BaseDatabaseWrapper | None = None,
) -> tuple[tuple[str, ...], list[Any], dict[str, Any]]:
    """A new row of `model` from {attname: value} (`order_id`, not `order`): the
    INSERT's quoted columns and prepared values (`insert_values`'s, the pk and
    `skip` left out), and every field's value as `model(**given)` and `save()`
    would give it, by attname (for `model_loaded`).

    A field left out takes its default (a callable one called for this row);
    `auto_now(_add)` fields take `now` (given or not, as `pre_save` does), or
    the time once for the row. `db`: the default database's connection, when
    the caller has it at hand (looked up otherwise, for a value to convert).
    Raises TypeError for a name that is no
    attname of the row's fields.
    """
    columns, plan, attnames = _plan(model, tuple(skip))
    if not given.keys() <= attnames:
        unknown = sorted(given.keys() - attnames)
        raise TypeError(f"{model.__name__} has no field {unknown[0]}")
    if not columns:  # fields with pre_save work of their own: the model's way
        obj = model(**given)
        built_columns, built_values = insert_values(obj, skip=skip)
        return (
            tuple(built_columns),
            built_values,
            {p[0]: obj.__dict__[p[0]] for p in plan},
        )
    # Filled by index and key: no call per value where none is converted.
    params: list[Any] = [None] * len(plan)
    attrs: dict[str, Any] = {}
    value: Any
    for i, (attname, field, native, default, prepared) in enumerate(plan):
        if default is _NOW:
            value = now = now or timezone.now()
        elif attname in given:
            value = given[attname]
        elif default is _CALL:
            value = field.get_default()
        else:
            attrs[attname] = default
            if prepared is not _CALL:
                params[i] = prepared
                continue
            value = default
        attrs[attname] = value
        # `_passes` inline for the common values (None, a str, an int).
        kind = type(value)
        if (
            native is not None
            and (value is None or (kind is native and (kind is str or kind is int)))
        ) or _passes(value, native):
            params[i] = value
        else:
            db = db or _db()
            params[i] = field.get_db_prep_save(value, db)
    return columns, params, attrs


def model_loaded(
    model: type[M], attrs: Mapping[str, Any], *, pk: Any, db: str = DEFAULT_DB_ALIAS
) -> M:
    """The instance `model.from_db` gives for a row just written: `attrs` (every
    concrete field's value but the pk's, by attname: `row_values`' third answer
    with the skipped ones added) and `pk`. A field missing from `attrs` would be
    deferred (read from the database on first use): callers pass them all."""
    obj = model.__new__(model)
    values = obj.__dict__
    values.update(attrs)
    opts = model._meta
    assert opts.pk is not None  # noqa: S101
    values[opts.pk.attname] = pk
    state = ModelState()
    state.adding = False
    state.db = db
    values["_state"] = state
    return obj


@cache
def _new_plan(model: type[Model]) -> tuple[tuple[str, Any, Any], ...]:
    """Per concrete field: its attname, and its default (`_CALL`: the field's)."""
    return tuple(
        (
            f.attname,
            f,
            _CALL if f.has_default() and callable(f.default) else f.get_default(),
        )
        for f in model._meta.concrete_fields
    )


def model_new(model: type[M], given: Mapping[str, Any]) -> M:
    """The unsaved instance `model(**given)` gives, for `given` by attname
    (`order_id`, not `order`): the other fields take their defaults.
    Raises TypeError for a name that is no concrete field's attname."""
    plan = _new_plan(model)
    obj = model.__new__(model)
    values = obj.__dict__
    found = 0
    for attname, field, default in plan:
        if attname in given:
            values[attname] = given[attname]
            found += 1
        elif default is _CALL:
            values[attname] = field.get_default()
        else:
            values[attname] = default
    if found != len(given):
        unknown = sorted(given.keys() - {p[0] for p in plan})
        raise TypeError(f"{model.__name__} has no field {unknown[0]}")
    values["_state"] = ModelState()
    return obj
