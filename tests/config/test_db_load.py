"""config/lib/db_load.py `row_loaded`: a row read is the instance `from_db` gives."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db.models.signals import post_init

from config.lib.db import row_get, rows_get
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
