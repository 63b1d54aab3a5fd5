"""Paid orders held for review: stock stays reserved; approve delivers, reject refunds."""

from __future__ import annotations

import pytest
from django.db import transaction

from fulfillment.models import CardCode
from orders.locks import order_lock_for_update_by_id
from orders.models import Order, OrderLine, Payment, Refund
from orders.services import (
    ReviewError,
    order_mark_paid,
    order_place,
    order_review_approve,
    order_review_reject,
)
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import available, stock_codes
from tests.factories.orders import sandbox_trade_paid

pytestmark = pytest.mark.django_db


@pytest.fixture
def held(alice):
    sku = SkuFactory(code="TX-VIP-MONTH")
    stock_codes(sku, 3)
    order = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=2)
    sandbox_trade_paid(order, trade_no="T1")
    with transaction.atomic():
        order = order_lock_for_update_by_id(order_id=order.id)
        payment = Payment.objects.create(
            order=order, gateway="sandbox", trade_no="T1", amount=order.total_amount
        )
        order_mark_paid(order=order, payment=payment, hold_reason="new account")
    return order


def test_held_order_waits_in_review_with_codes_reserved(held):
    held.refresh_from_db()

    assert held.status == Order.Status.REVIEW
    assert held.lines.get().status == OrderLine.Status.RESERVED
    assert held.lines.get().codes.filter(status=CardCode.Status.RESERVED).count() == 2
    assert held.events.filter(kind="review", detail__reason="new account").exists()


def test_approve_delivers_a_held_order(held, operator):
    order_review_approve(order_id=held.id, actor=operator)

    held.refresh_from_db()
    assert held.status == Order.Status.DELIVERED
    assert held.lines.get().codes.filter(status=CardCode.Status.SOLD).count() == 2


def test_reject_refunds_everything_and_puts_the_codes_back(
    held, operator, django_capture_on_commit_callbacks
):
    sku = held.lines.get().sku
    with django_capture_on_commit_callbacks(execute=True):
        refund = order_review_reject(
            order_id=held.id, actor=operator, reason="风控审核未通过"
        )

    held.refresh_from_db()
    refund.refresh_from_db()
    assert held.status == Order.Status.REFUNDED
    assert held.refunded_amount == held.total_amount
    assert refund.status == Refund.Status.SUCCEEDED
    assert refund.actor == operator
    assert held.lines.get().status_reason == "风控审核未通过"
    assert available(sku) == 3


def test_approve_or_reject_refuses_an_order_not_in_review(alice, operator):
    sku = SkuFactory(code="X-1")
    stock_codes(sku, 1)
    order = order_place(user=alice, sku_code="X-1", quantity=1)

    with pytest.raises(ReviewError):
        order_review_approve(order_id=order.id, actor=operator)
    with pytest.raises(ReviewError):
        order_review_reject(order_id=order.id, actor=operator, reason="x")
