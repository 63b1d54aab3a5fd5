"""config/lib/db_row.py: rows from values, instances as the model would build them."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.db import models
from django.test.utils import isolate_apps
from django.utils import timezone

from config.lib.db import insert_values
from config.lib.db_row import model_new, row_values
from orders.models import Order
from orders.services import order_place
from risk.models import RiskEvaluation
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes


class _Sealed(models.CharField):  # type: ignore[type-arg]
    """A field with its own conversion (as an encrypted field has)."""

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return None if value is None else f"sealed:{value[::-1]}"


def _plain(value: Any) -> Any:
    """psycopg2's adapters (Json, Inet) compare by identity: their wrapped value."""
    return getattr(value, "adapted", getattr(value, "addr", value))


@pytest.mark.django_db
@isolate_apps("orders")
def test_row_values_gives_what_a_built_model_and_insert_values_give():
    class Thing(models.Model):  # noqa: DJ008
        label = models.CharField(max_length=20, default="plain")
        sealed = _Sealed(max_length=40, blank=True)
        data = models.JSONField(default=dict)
        key = models.UUIDField(default=uuid.uuid4)
        count = models.IntegerField(null=True)
        price = models.DecimalField(max_digits=8, decimal_places=2, default=0)
        ip = models.GenericIPAddressField(null=True)
        flag = models.BooleanField(default=False)
        created_at = models.DateTimeField(auto_now_add=True)
        updated_at = models.DateTimeField(auto_now=True)

        class Meta:
            app_label = "orders"

    given = {"sealed": "secret", "count": True, "ip": "10.0.0.1", "data": {"a": 1}}
    built = Thing(**given)
    columns, values = insert_values(built)

    got_columns, got_values, attrs = row_values(Thing, given)

    assert got_columns == tuple(columns)
    assert len(got_values) == len(values) == 10
    varying = (3, 8, 9)  # the key (a new uuid per row), the two times
    assert [_plain(v) for i, v in enumerate(got_values) if i not in varying] == [
        _plain(v) for i, v in enumerate(values) if i not in varying
    ]
    assert isinstance(got_values[3], uuid.UUID)
    assert got_values[3] != values[3]
    assert got_values[8] == got_values[9]
    assert got_values[8].tzinfo is not None
    assert got_values[1] == "sealed:terces"
    expected = {
        k: v for k, v in vars(built).items() if k not in ("_state", "id", "key")
    }
    assert {k: v for k, v in attrs.items() if k != "key"} == expected | {
        "created_at": got_values[8],
        "updated_at": got_values[9],
    }
    assert attrs["price"] == 0
    assert attrs["flag"] is False


@pytest.mark.django_db
@isolate_apps("orders")
def test_row_values_takes_the_time_given_and_leaves_out_what_is_skipped():
    class Thing(models.Model):  # noqa: DJ008
        label = models.CharField(max_length=20)
        data = models.JSONField(default=list)
        created_at = models.DateTimeField(auto_now_add=True)

        class Meta:
            app_label = "orders"

    stamp = timezone.now() - dt.timedelta(days=1)

    columns, values, attrs = row_values(
        Thing, {"label": "x"}, skip=("data",), now=stamp
    )
    _, _first, one = row_values(Thing, {"label": "y"})
    _, _second, other = row_values(Thing, {"label": "z"})

    assert columns == ('"label"', '"created_at"')
    assert values == ["x", stamp]
    assert attrs == {"label": "x", "created_at": stamp}
    assert one["data"] == other["data"] == []
    assert one["data"] is not other["data"]  # a callable default: one per row
    with pytest.raises(TypeError, match="no field"):
        row_values(Thing, {"nothing": 1})


def test_model_new_is_the_instance_the_model_builds():
    given = {
        "stage": "checkout",
        "decision": "allow",
        "inputs": {"ip": "10.0.0.1"},
        "order_id": None,
        "user_id": 7,
        "ip_address": "10.0.0.1",
        "device": "d" * 64,
    }

    new = model_new(RiskEvaluation, given)
    other = model_new(RiskEvaluation, given)
    built = RiskEvaluation(**given)

    assert {k: v for k, v in vars(new).items() if k != "_state"} == {
        k: v for k, v in vars(built).items() if k != "_state"
    }
    assert new._state.adding is True
    assert new._state.db is None
    assert new.pk is None
    assert new.get_deferred_fields() == set()
    assert new.fired == []
    assert new.fired is not other.fired
    with pytest.raises(TypeError, match="no field"):
        model_new(RiskEvaluation, {"order": None})


@pytest.mark.django_db
def test_a_placed_order_is_the_row_as_the_database_reads_it(alice):
    sku = SkuFactory(code="ROW-ONE", price=Decimal("30.00"))
    stock_codes(sku, 1)

    order = order_place(
        user=alice,
        sku_code="ROW-ONE",
        quantity=1,
        client_token="tok-row",
        ip_address="10.1.2.3",
        device_id="dev",
    )

    read = Order.objects.get(pk=order.pk)
    assert order.get_deferred_fields() == set()
    assert order._state.adding is False
    assert order._state.db == "default"
    for field in Order._meta.concrete_fields:
        assert getattr(order, field.attname) == getattr(read, field.attname), (
            field.attname
        )
    assert order.created_at == order.updated_at
    assert order.lines.get().sku_id == sku.id
    assert order.events.get().kind == "placed"
