"""config/lib/db.py `insert_values`: values as the fields' own conversion gives them."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, models
from django.test.utils import isolate_apps
from django.utils import timezone

from config.lib.db import (
    insert_values,
    insert_write,
    row_get,
    row_insert,
)
from config.lib.db_fold import insert_write_rows, row_insert_given
from orders.models import OrderEvent, PaymentNotify
from orders.services import order_place
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes


class _Sealed(models.CharField):  # type: ignore[type-arg]
    """A field with its own conversion (as an encrypted field has)."""

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return None if value is None else f"sealed:{value[::-1]}"


def _expected(obj: models.Model, skip: tuple[str, ...] = ()) -> list[Any]:
    return [
        f.get_db_prep_save(getattr(obj, f.attname), connection)  # pre_save done
        for f in obj._meta.concrete_fields
        if not f.primary_key and f.attname not in skip and f.name not in skip
    ]


def _plain(value: Any) -> Any:
    """psycopg2's adapters (Json, Inet) compare by identity: their wrapped value."""
    return getattr(value, "adapted", getattr(value, "addr", value))


@isolate_apps("orders")
def test_insert_values_converts_what_psycopg2_would_not_take_as_it_is():
    class Thing(models.Model):  # noqa: DJ008
        label = models.CharField(max_length=20)
        sealed = _Sealed(max_length=40)
        count = models.IntegerField()
        flag = models.BooleanField()
        price = models.DecimalField(max_digits=8, decimal_places=2)
        data = models.JSONField(null=True)
        key = models.UUIDField(default=uuid.uuid4)
        ip = models.GenericIPAddressField(null=True)
        at = models.DateTimeField()
        created_at = models.DateTimeField(auto_now_add=True)
        day = models.DateField(null=True)

        class Meta:
            app_label = "orders"

    aware = timezone.now()
    thing = Thing(
        label="月卡",
        sealed="secret",
        count=True,  # a bool in an integer field: the field makes it 1
        flag=False,
        price=Decimal("12.50"),
        data={"a": [1, "二"]},
        ip="203.0.113.7",
        at=aware,
        day=dt.date(2026, 12, 1),
    )

    columns, values = insert_values(thing)

    assert columns == [
        connection.ops.quote_name(c)
        for c in (
            "label",
            "sealed",
            "count",
            "flag",
            "price",
            "data",
            "key",
            "ip",
            "at",
            "created_at",
            "day",
        )
    ]
    by_column = dict(zip(columns, values, strict=True))
    assert by_column['"sealed"'] == "sealed:terces"
    assert by_column['"count"'] == 1
    assert type(by_column['"count"']) is int
    assert by_column['"price"'] == Decimal("12.50")
    assert by_column['"at"'] is aware
    assert thing.created_at is not None  # auto_now_add filled, as save() would
    assert by_column['"created_at"'] == thing.created_at
    expected = _expected(thing)
    assert [_plain(v) for v in values] == [_plain(v) for v in expected]
    assert [type(v) for v in values] == [type(v) for v in expected]


@isolate_apps("orders")
def test_insert_values_refuses_what_the_field_refuses():
    class Priced(models.Model):  # noqa: DJ008
        price = models.DecimalField(max_digits=8, decimal_places=2)
        count = models.IntegerField(null=True)

        class Meta:
            app_label = "orders"

    with pytest.raises(ValidationError):
        insert_values(Priced(price=Decimal("NaN")))
    with pytest.raises(ValueError, match="expected a number"):
        insert_values(Priced(price=Decimal(1), count="x"))
    assert insert_values(Priced(price=Decimal(1), count=None))[1] == [Decimal(1), None]


@isolate_apps("orders")
def test_insert_values_makes_a_naive_datetime_aware_as_the_field_does():
    class Stamped(models.Model):  # noqa: DJ008
        at = models.DateTimeField()

        class Meta:
            app_label = "orders"

    naive = dt.datetime(2026, 12, 1, 12, 0)  # noqa: DTZ001 (the case under test)

    with pytest.warns(RuntimeWarning, match="naive datetime"):
        (value,) = insert_values(Stamped(at=naive))[1]

    assert value.tzinfo is not None
    assert value == timezone.make_aware(naive)


@pytest.mark.django_db
def test_a_row_written_with_insert_values_reads_back_as_the_orm_wrote_it(alice):
    sku = SkuFactory(code="TX-VIP-MONTH", product__slug="tx-vip")
    stock_codes(sku, ["TXCODE000001"])
    order = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)
    event = OrderEvent(
        order=order,
        kind=OrderEvent.Kind.PLACED,
        detail={"sku": "TX-M", "total": "30.00", "nested": {"n": [1, None]}},
    )

    row_insert(event)

    again = row_get(OrderEvent, pk=event.pk)
    assert again is not None
    assert again.detail == event.detail
    assert again.order_id == order.pk
    assert again.kind == OrderEvent.Kind.PLACED


@isolate_apps("orders")
def test_insert_write_rows_gives_the_values_a_built_model_gives():
    class Thing(models.Model):  # noqa: DJ008
        label = models.CharField(max_length=20, default="plain")
        sealed = _Sealed(max_length=40, blank=True)
        data = models.JSONField(default=dict)
        key = models.UUIDField(default=uuid.uuid4)
        count = models.IntegerField(null=True)
        created_at = models.DateTimeField(auto_now_add=True)

        class Meta:
            app_label = "orders"

    given = {"sealed": "secret", "count": True}

    rows = insert_write_rows(Thing, [given, {"label": "二"}])
    built = insert_write([Thing(**given), Thing(label="二")])

    assert rows.sql == built.sql
    assert len(rows.params) == len(built.params) == 12
    keys = (rows.params[3], rows.params[9])
    assert all(isinstance(k, uuid.UUID) for k in keys)
    assert keys[0] != keys[1]
    stamps = (rows.params[5], rows.params[11])
    assert all(s.tzinfo is not None for s in stamps)
    same = [i for i in range(12) if i not in (3, 5, 9, 11)]
    assert [_plain(rows.params[i]) for i in same] == [
        _plain(built.params[i]) for i in same
    ]
    assert rows.params[1] == "sealed:terces"
    assert rows.params[4] == 1
    assert type(rows.params[4]) is int
    with pytest.raises(TypeError, match="no field"):
        insert_write_rows(Thing, [{"order": 1}])


@pytest.mark.django_db
def test_row_insert_given_writes_and_gives_what_row_insert_of_a_built_model_does():
    given = {
        "gateway": "sandbox",
        "payload": {"out_trade_no": "KQ1", "nested": {"n": [1, None]}},
        "remote_addr": "203.0.113.7",
        "out_trade_no": "KQ1",
        "outcome": PaymentNotify.Outcome.RECEIVED,
    }

    notify = row_insert_given(PaymentNotify, given)
    built = row_insert(PaymentNotify(**given))

    assert notify.pk is not None
    assert notify.pk != built.pk
    assert (notify._state.adding, notify._state.db) == (False, "default")
    fields = [f.attname for f in PaymentNotify._meta.concrete_fields]
    different = {"id", "created_at"}
    assert {a: getattr(notify, a) for a in fields if a not in different} == {
        a: getattr(built, a) for a in fields if a not in different
    }
    assert notify.created_at.tzinfo is not None
    again = row_get(PaymentNotify, pk=notify.pk)
    assert again is not None
    assert {a: getattr(again, a) for a in fields} == {
        a: getattr(notify, a) for a in fields
    }
    with pytest.raises(TypeError, match="no field"):
        row_insert_given(PaymentNotify, {"order": 1})
