"""Confirm paid: an operator marks an order paid on a trade number the gateway confirms."""

from __future__ import annotations

import pytest
from django.core import mail

from fulfillment.models import CardCode
from orders.models import Order, OrderEvent, Payment, Refund, SandboxTrade
from orders.services import order_cancel, order_place
from orders.services.aftersales import AfterSalesError
from orders.services.confirm_paid import order_confirm_paid
from tests.factories.fulfillment import available
from tests.factories.orders import sandbox_trade_paid

pytestmark = pytest.mark.django_db


@pytest.fixture
def order(alice, sku):
    return order_place(user=alice, sku_code=sku.code, quantity=2)


def confirm(order, operator, trade_no="T9", **kwargs):
    kwargs.setdefault("gateway_name", "sandbox")
    kwargs.setdefault("reason", "顾客提供了支付截图，通知未到")
    return order_confirm_paid(
        order_id=order.id, trade_no=trade_no, actor=operator, **kwargs
    )


def test_confirm_paid_delivers_a_pending_order_and_records_who_and_why(
    order, operator, django_capture_on_commit_callbacks
):
    sandbox_trade_paid(order, trade_no="T9")
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        done = confirm(order, operator)

    order.refresh_from_db()
    assert (done.outcome, done.verified) == ("paid", True)
    assert order.status == Order.Status.DELIVERED
    assert order.paid_amount == order.total_amount
    assert Payment.objects.get(order=order).trade_no == "T9"
    event = OrderEvent.objects.get(order=order, kind=OrderEvent.Kind.PAID_CONFIRMED)
    assert event.actor == operator
    assert event.detail["reason"] == "顾客提供了支付截图，通知未到"
    assert (event.detail["trade_no"], event.detail["verified"]) == ("T9", True)
    assert order.lines.get().codes.filter(status="sold").count() == 2
    assert len(mail.outbox) == 1  # the delivery email, as after a notify


def test_confirm_paid_re_reserves_a_cancelled_order_when_stock_allows(
    order, operator, sku, django_capture_on_commit_callbacks
):
    order_cancel(order_id=order.pk, reason="payment_timeout")
    sandbox_trade_paid(order, trade_no="T9")

    with django_capture_on_commit_callbacks(execute=True):
        done = confirm(order, operator)

    order.refresh_from_db()
    assert done.outcome == "paid"
    assert order.status == Order.Status.DELIVERED
    assert order.events.filter(kind="reopened").exists()
    assert available(sku) == 3


def test_confirm_paid_refunds_a_cancelled_order_whose_stock_is_gone(
    order, operator, sku, mallory, django_capture_on_commit_callbacks
):
    order_cancel(order_id=order.pk, reason="payment_timeout")
    order_place(user=mallory, sku_code=sku.code, quantity=4)  # 1 of 5 left
    sandbox_trade_paid(order, trade_no="T9")

    with django_capture_on_commit_callbacks(execute=True):
        done = confirm(order, operator)

    order.refresh_from_db()
    assert done.outcome == "refunded"
    assert order.status == Order.Status.REFUNDED
    assert Refund.objects.get(order=order).status == Refund.Status.SUCCEEDED
    assert SandboxTrade.objects.get(trade_no="T9").refunded_amount == order.total_amount
    assert not CardCode.objects.filter(order_line__order=order).exists()


def test_confirm_paid_twice_pays_once(
    order, operator, django_capture_on_commit_callbacks
):
    sandbox_trade_paid(order, trade_no="T9")
    with django_capture_on_commit_callbacks(execute=True):
        confirm(order, operator)

    again = confirm(order, operator)

    assert again.outcome == "duplicate"
    assert Payment.objects.filter(order=order).count() == 1
    assert OrderEvent.objects.filter(order=order, kind="paid_confirmed").count() == 1
    assert not Refund.objects.exists()


def test_confirm_paid_is_refused_when_the_gateway_says_unpaid(order, operator):
    SandboxTrade.objects.create(
        trade_no="T9",
        out_trade_no=order.number,
        subject="x",
        total_amount=order.total_amount,
        notify_url="http://127.0.0.1/",
        return_url="http://127.0.0.1/",
    )

    with pytest.raises(
        AfterSalesError, match="交易未支付（状态：待支付），未确认到账"
    ) as caught:
        confirm(order, operator)

    assert caught.value.field == "trade_no"
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert not Payment.objects.exists()
    assert not OrderEvent.objects.filter(kind="paid_confirmed").exists()


def test_confirm_paid_is_refused_when_the_trade_number_is_not_the_gateways(
    order, operator
):
    sandbox_trade_paid(order, trade_no="T9")

    with pytest.raises(AfterSalesError, match="网关记录为 T9"):
        confirm(order, operator, trade_no="FORGED1")

    assert not Payment.objects.exists()


def test_confirm_paid_is_refused_when_the_gateway_has_no_trade(order, operator):
    with pytest.raises(AfterSalesError, match="查不到该订单的交易"):
        confirm(order, operator)

    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"trade_no": ""}, "trade_no"),
        ({"trade_no": "T9\x00"}, "trade_no"),
        ({"trade_no": "T" * 65}, "trade_no"),
        ({"trade_no": "T 9"}, "trade_no"),
        ({"reason": ""}, "reason"),
        ({"gateway_name": "alipay"}, "gateway"),  # not enabled in tests
    ],
)
def test_confirm_paid_refuses_bad_input_at_its_field(order, operator, fields, field):
    sandbox_trade_paid(order, trade_no="T9")

    with pytest.raises(AfterSalesError) as caught:
        confirm(order, operator, **fields)

    assert caught.value.field == field
    assert not Payment.objects.exists()


def test_confirm_paid_is_refused_for_an_order_paid_by_another_trade(
    order, operator, client, django_capture_on_commit_callbacks
):
    from tests.orders.aftersales.conftest import pay

    with django_capture_on_commit_callbacks(execute=True):
        pay(client, order, trade_no="T1")

    with pytest.raises(AfterSalesError, match="只有待支付或已取消的订单"):
        confirm(order, operator, trade_no="T9")
