"""config/lib/db_load.py `row_loaded`: a row read is the instance `from_db` gives."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import models
from django.db.models.signals import post_init
from django.test.utils import isolate_apps

from config.lib.db import row_get, rows_get
from config.lib.db_load import row_loaded
from orders.models import Order, OrderLine
from orders.services import order_place
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes


def _placed(user: Any) -> Order:
    sku = SkuFactory(code="LOAD-ONE", price=Decimal("12.00"))
    stock_codes(sku, 2)
    return order_place(
        user=user,
        sku_code="LOAD-ONE",
        quantity=2,
        client_token="tok-load",
        ip_address="10.1.2.4",
        device_id="dev",
    )


@pytest.mark.django_db
def test_a_row_read_is_the_instance_the_orm_reads(alice):
    order = _placed(alice)

    read = row_get(Order, number=order.number)
    orm = Order.objects.get(pk=order.pk)
    assert type(read) is Order
    assert read.get_deferred_fields() == set()
    assert (read._state.adding, read._state.db) == (False, "default")
    assert read == orm
    for field in Order._meta.concrete_fields:
        assert getattr(read, field.attname) == getattr(orm, field.attname), (
            field.attname
        )
    # Foreign keys and reverse relations work as on the ORM's instance.
    assert read.user == alice
    (line,) = rows_get(OrderLine, order_id=order.pk)
    assert line.order == orm
    assert line.order_id == order.pk
    assert read.lines.get() == line
    read.status = Order.Status.CANCELLED
    read.save(update_fields=["status"])
    assert Order.objects.get(pk=order.pk).status == Order.Status.CANCELLED


@pytest.mark.django_db
def test_a_post_init_receiver_still_sees_every_row_read(alice):
    order = _placed(alice)
    seen: list[Any] = []

    def receiver(sender: Any, instance: Any, **kwargs: Any) -> None:
        seen.append(instance.pk)

    post_init.connect(receiver, sender=Order)
    try:
        row_get(Order, number=order.number)
    finally:
        post_init.disconnect(receiver, sender=Order)
    assert seen == [order.pk]


class _Shown:
    """A field attribute with work of its own on set (as a file field has)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        return self if instance is None else instance.__dict__[self.name]

    def __set__(self, instance: Any, value: Any) -> None:
        instance.__dict__[self.name] = f"set:{value}"


class _ShownField(models.CharField):  # type: ignore[type-arg]
    def contribute_to_class(self, cls: Any, name: str, **kwargs: Any) -> None:
        super().contribute_to_class(cls, name, **kwargs)
        setattr(cls, self.attname, _Shown(self.attname))


@isolate_apps("orders")
def test_a_field_with_its_own_descriptor_is_built_by_the_model():
    class Shown(models.Model):  # noqa: DJ008
        label = _ShownField(max_length=10)

        class Meta:
            app_label = "orders"

    built = row_loaded(Shown, ("id", "label"), [7, "x"])
    assert built.label == "set:x"  # what `Shown.from_db` gives
    assert (built.pk, built._state.adding) == (7, False)
    assert row_loaded(Order, *_order_row()).number == "N-1"


def _order_row() -> tuple[tuple[str, ...], list[Any]]:
    attnames = tuple(f.attname for f in Order._meta.concrete_fields)
    return attnames, ["N-1" if name == "number" else None for name in attnames]
