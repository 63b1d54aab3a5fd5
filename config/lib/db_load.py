"""Model instances from rows read, without `Model.__init__` (config/lib/db.py's
and db_fold.py's reads: the pay page's trade, the notify's order and lines).

`Model.from_db` calls `Model(*values)`, which sends `pre_init` and `post_init`
and sets every field by `setattr` (~40 Python calls for an order). Where
nothing can tell the difference, `row_loaded` gives the same instance: its
values in `__dict__` and a `ModelState` of the database's, as `from_db` leaves
it. It falls back on `from_db` when any `pre_init`/`post_init` receiver is
connected (checked on every call: a list's truth, no call), and for a model
that overrides `__init__` or `from_db`, or has a field whose attribute is a
data descriptor other than a foreign key's id (whose `__set__` only writes
`__dict__` on a fresh instance).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from inspect import getattr_static
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Model
from django.db.models.base import ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init

M = TypeVar("M", bound=Model)

_PLAIN = (DeferredAttribute, ForeignKeyDeferredAttribute)


@cache
def _direct(model: type[Model]) -> bool:
    """Whether `from_db` on every concrete field's value may be replaced by
    writing them into `__dict__` (see the module's docstring)."""
    if model.__init__ is not Model.__init__:
        return False
    if getattr_static(model, "from_db") is not getattr_static(Model, "from_db"):
        return False
    return all(
        type(getattr_static(model, f.attname, None)) in _PLAIN
        for f in model._meta.concrete_fields
    )


def row_loaded(model: type[M], attnames: Sequence[str], values: Sequence[Any]) -> M:
    """`model.from_db(DEFAULT_DB_ALIAS, attnames, values)` for a row holding
    every concrete field's value (`attnames`: theirs, in their order)."""
    if pre_init.receivers or post_init.receivers or not _direct(model):
        return model.from_db(DEFAULT_DB_ALIAS, attnames, values)
    obj = model.__new__(model)
    state = ModelState()
    state.adding = False
    state.db = DEFAULT_DB_ALIAS
    fields = obj.__dict__
    fields["_state"] = state
    fields.update(zip(attnames, values, strict=True))
    return obj
