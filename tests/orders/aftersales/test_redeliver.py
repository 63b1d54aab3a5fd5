"""补单: an operator re-runs the delivery of a paid line stuck undelivered."""

from __future__ import annotations

import pytest

from fulfillment.models import CardCode
from orders.models import Order, OrderEvent, OrderLine
from orders.services import order_place
from orders.services.aftersales import AfterSalesError, order_line_redeliver
from tests.orders.aftersales.conftest import pay

pytestmark = pytest.mark.django_db


@pytest.fixture
def stuck(client, alice, sku, django_capture_on_commit_callbacks):
    """A paid order whose line found its reserved codes gone (left for an operator)."""
    order = order_place(user=alice, sku_code=sku.code, quantity=2)
    CardCode.objects.filter(order_line__order=order).update(
        status=CardCode.Status.AVAILABLE, order_line=None, reserved_at=None
    )
    with django_capture_on_commit_callbacks(execute=True):
        order = pay(client, order)
    assert order.status == Order.Status.FULFILLING
    return order


def test_redeliver_sells_codes_from_stock_and_delivers_the_order(
    stuck, operator, django_capture_on_commit_callbacks
):
    line = stuck.lines.get()

    with django_capture_on_commit_callbacks(execute=True):
        done = order_line_redeliver(line_id=line.id, actor=operator)

    line.refresh_from_db()
    stuck.refresh_from_db()
    assert done.outcome == "delivered"
    assert line.status == OrderLine.Status.DELIVERED
    assert line.codes.filter(status="sold").count() == 2
    assert stuck.status == Order.Status.DELIVERED
    event = OrderEvent.objects.get(order=stuck, kind="line_redelivered")
    assert event.actor == operator


def test_redeliver_twice_delivers_once(stuck, operator):
    line = stuck.lines.get()
    order_line_redeliver(line_id=line.id, actor=operator)

    with pytest.raises(AfterSalesError, match="不能补单"):
        order_line_redeliver(line_id=line.id, actor=operator)

    assert CardCode.objects.filter(order_line=line).count() == 2


def test_redeliver_without_stock_says_so_and_changes_nothing(stuck, operator, sku):
    line = stuck.lines.get()
    CardCode.objects.filter(sku=sku, status="available").exclude(
        id__in=CardCode.objects.filter(sku=sku, status="available").order_by("id")[:1]
    ).update(status=CardCode.Status.VOID)

    with pytest.raises(AfterSalesError, match="还差 2 张卡密"):
        order_line_redeliver(line_id=line.id, actor=operator)

    line.refresh_from_db()
    assert line.status == OrderLine.Status.RESERVED
    assert not CardCode.objects.filter(order_line=line).exists()
    assert CardCode.objects.filter(sku=sku, status="available").count() == 1


def test_redeliver_refuses_a_delivered_line(paid_order, operator):
    with pytest.raises(AfterSalesError, match="订单状态为“已发货”，不能补单"):
        order_line_redeliver(line_id=paid_order.lines.get().id, actor=operator)
