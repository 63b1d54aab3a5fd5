"""Small SQL helpers the ORM does not offer."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection
from django.db.models import Model


def row_insert_once(obj: Model, *, unique: Sequence[str] = ()) -> bool:
    """INSERT `obj` unless a unique key already holds its values; True when written.

    `INSERT ... ON CONFLICT [(unique)] DO NOTHING RETURNING pk`: where a duplicate
    is expected (a gateway's retried notify, a second email of one kind), the
    unique key answers in the same statement, with no SELECT first and no
    IntegrityError (nor the savepoint catching it would need) inside the caller's
    transaction. Without `unique`, any unique key (a partial one too) counts.
    On success `obj` gets its primary key, as `create()` would give it.
    """
    opts = obj._meta
    fields = [f for f in opts.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    values = [f.get_db_prep_save(f.pre_save(obj, add=True), connection) for f in fields]
    column = {f.name: f.column for f in fields}
    target = f" ({', '.join(quote(column[name]) for name in unique)})" if unique else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(opts.db_table)}"  # noqa: S608 (names from the model)
            f" ({', '.join(quote(f.column) for f in fields)})"
            f" VALUES ({', '.join(['%s'] * len(fields))})"
            f" ON CONFLICT{target} DO NOTHING"
            f" RETURNING {quote(opts.pk.column)}",
            values,
        )
        row = cursor.fetchone()
    if row is None:
        return False
    obj.pk = row[0]
    obj._state.adding = False
    obj._state.db = connection.alias
    return True
