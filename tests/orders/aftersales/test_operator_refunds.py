"""Operators refund whole orders or single lines, partial amounts too; codes come back."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import mail

from catalog.models import Sku
from fulfillment.models import CardCode
from orders.models import Order, OrderLine, Refund, ReturnedCode, SandboxTrade
from orders.services import RefundError, order_code_reveal, order_place
from orders.services.aftersales import AfterSalesError, order_refund_by_operator
from tests.factories.catalog import BundleItemFactory, SkuFactory
from tests.factories.fulfillment import available, stock_codes
from tests.orders.aftersales.conftest import pay

pytestmark = pytest.mark.django_db


def refund(order, operator, **kwargs):
    kwargs.setdefault("amounts", None)
    kwargs.setdefault("reason", "顾客要求退款")
    return order_refund_by_operator(order_id=order.id, actor=operator, **kwargs)


def test_refund_whole_order_returns_the_money_and_voids_codes_by_default(
    paid_order, operator, sku, django_capture_on_commit_callbacks
):
    line = paid_order.lines.get()
    code_ids = list(line.codes.values_list("id", flat=True))
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        made = refund(paid_order, operator)

    made.refresh_from_db()
    paid_order.refresh_from_db()
    line.refresh_from_db()
    assert (made.status, made.amount, made.actor_kind, made.actor) == (
        Refund.Status.SUCCEEDED,
        Decimal("50.00"),
        "operator",
        operator,
    )
    assert paid_order.status == Order.Status.REFUNDED
    assert paid_order.refunded_amount == Decimal("50.00")
    assert line.status == OrderLine.Status.REFUNDED
    assert SandboxTrade.objects.get(trade_no="T1").refunded_amount == Decimal("50.00")
    codes = CardCode.objects.filter(id__in=code_ids)
    assert set(codes.values_list("status", "order_line")) == {("void", None)}
    returned = ReturnedCode.objects.filter(line=line)
    assert sorted(returned.values_list("code_id", flat=True)) == sorted(code_ids)
    assert set(returned.values_list("outcome", "reason")) == {
        ("voided", "顾客要求退款")
    }
    assert available(sku) == 3  # nothing went back on sale
    assert len(mail.outbox) == 1
    assert "顾客要求退款" in mail.outbox[0].body


def test_refund_with_restock_puts_unrevealed_codes_back_on_sale(
    paid_order, operator, sku, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        refund(paid_order, operator, codes="restock")

    assert available(sku) == 5
    assert set(ReturnedCode.objects.values_list("outcome", flat=True)) == {"restocked"}


def test_refund_voids_revealed_codes_even_when_restocking(
    paid_order, operator, alice, sku, django_capture_on_commit_callbacks
):
    seen, unseen = paid_order.lines.get().codes.order_by("id")
    order_code_reveal(order=paid_order, code_id=seen.id, user=alice)

    with django_capture_on_commit_callbacks(execute=True):
        refund(paid_order, operator, codes="restock")

    seen.refresh_from_db()
    unseen.refresh_from_db()
    assert (seen.status, unseen.status) == ("void", "available")
    assert ReturnedCode.objects.get(code=seen).was_revealed is True
    assert ReturnedCode.objects.get(code=unseen).was_revealed is False
    assert available(sku) == 4


def test_partial_refund_of_a_line_leaves_its_codes_with_the_shopper(
    paid_order, operator, django_capture_on_commit_callbacks
):
    line = paid_order.lines.get()

    with django_capture_on_commit_callbacks(execute=True):
        made = refund(paid_order, operator, amounts={line.id: Decimal("10.00")})

    made.refresh_from_db()
    paid_order.refresh_from_db()
    line.refresh_from_db()
    assert made.status == Refund.Status.SUCCEEDED
    assert (line.status, line.refunded_amount) == ("delivered", Decimal("10.00"))
    assert paid_order.status == Order.Status.PARTIALLY_REFUNDED
    assert paid_order.refunded_amount == Decimal("10.00")
    assert line.codes.filter(status="sold").count() == 2
    assert not ReturnedCode.objects.exists()


def test_partial_refunds_add_up_to_the_line_and_then_take_the_codes_back(
    paid_order, operator, sku, django_capture_on_commit_callbacks
):
    line = paid_order.lines.get()
    with django_capture_on_commit_callbacks(execute=True):
        refund(paid_order, operator, amounts={line.id: Decimal("10.00")})
        refund(paid_order, operator, amounts={line.id: Decimal("40.00")})

    line.refresh_from_db()
    paid_order.refresh_from_db()
    assert line.status == OrderLine.Status.REFUNDED
    assert paid_order.status == Order.Status.REFUNDED
    assert ReturnedCode.objects.filter(line=line).count() == 2
    with pytest.raises(AfterSalesError, match="已退款”，不能退款"):
        refund(paid_order, operator)


def test_refund_clicked_twice_with_one_form_key_refunds_once(
    paid_order, operator, django_capture_on_commit_callbacks
):
    line = paid_order.lines.get()
    with django_capture_on_commit_callbacks(execute=True):
        first = refund(
            paid_order, operator, amounts={line.id: Decimal("5.00")}, request_key="k1"
        )
        second = refund(
            paid_order, operator, amounts={line.id: Decimal("5.00")}, request_key="k1"
        )

    assert first.pk == second.pk
    line.refresh_from_db()
    assert line.refunded_amount == Decimal("5.00")
    assert Refund.objects.count() == 1
    assert SandboxTrade.objects.get(trade_no="T1").refunded_amount == Decimal("5.00")


@pytest.fixture
def paid_bundle(client, alice, django_capture_on_commit_callbacks):
    """A delivered 40.00 bundle of two card-code SKUs (shares 30.00 and 10.00)."""
    big = SkuFactory(code="BIG", face_value=Decimal("30.00"))
    small = SkuFactory(code="SMALL", face_value=Decimal("10.00"))
    stock_codes(big, 2)
    stock_codes(small, 2)
    bundle = SkuFactory(
        code="BNDL", delivery=Sku.Delivery.BUNDLE, price=Decimal("40.00")
    )
    BundleItemFactory(bundle=bundle, component=big)
    BundleItemFactory(bundle=bundle, component=small)
    order = order_place(user=alice, sku_code="BNDL", quantity=1)
    with django_capture_on_commit_callbacks(execute=True):
        return pay(client, order)


def test_refund_one_line_of_a_bundle_leaves_the_other_delivered(
    paid_bundle, operator, django_capture_on_commit_callbacks
):
    small = paid_bundle.lines.get(sku__code="SMALL")
    big = paid_bundle.lines.get(sku__code="BIG")

    with django_capture_on_commit_callbacks(execute=True):
        refund(paid_bundle, operator, amounts={small.id: small.amount})

    small.refresh_from_db()
    big.refresh_from_db()
    paid_bundle.refresh_from_db()
    assert (small.status, big.status) == ("refunded", "delivered")
    assert paid_bundle.status == Order.Status.PARTIALLY_REFUNDED
    assert paid_bundle.refunded_amount == Decimal("10.00")
    assert not small.codes.exists()
    assert big.codes.filter(status="sold").count() == 1


@pytest.mark.parametrize(
    ("amount", "field"),
    [
        (Decimal("0"), "amount_"),
        (Decimal("1.005"), "amount_"),
        (Decimal("-1"), "amount_"),
    ],
)
def test_refund_refuses_a_bad_amount_at_its_field(paid_order, operator, amount, field):
    line = paid_order.lines.get()

    with pytest.raises(AfterSalesError) as caught:
        refund(paid_order, operator, amounts={line.id: amount})

    assert caught.value.field == f"{field}{line.id}"
    assert not Refund.objects.exists()


def test_refund_refuses_more_than_the_line_has_left(paid_order, operator):
    line = paid_order.lines.get()

    with pytest.raises(RefundError, match="超过了实付金额"):
        refund(paid_order, operator, amounts={line.id: Decimal("50.01")})

    line.refresh_from_db()
    assert line.refunded_amount == 0
    assert not Refund.objects.exists()


def test_refund_refuses_a_line_of_another_order(
    paid_order, operator, sku, alice, client
):
    other = order_place(user=alice, sku_code=sku.code, quantity=1)

    with pytest.raises(AfterSalesError, match="不属于该订单"):
        refund(paid_order, operator, amounts={other.lines.get().id: Decimal("1.00")})


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("", "请填写原因"),
        ("   ", "请填写原因"),
        ("a\x00b", "不允许的字符"),
        ("长" * 201, "最长 200"),
    ],
)
def test_refund_refuses_a_bad_reason_at_its_field(
    paid_order, operator, reason, message
):
    with pytest.raises(AfterSalesError, match=message) as caught:
        refund(paid_order, operator, reason=reason)

    assert caught.value.field == "reason"
    assert not Refund.objects.exists()


def test_refund_refuses_an_unpaid_order(alice, sku, operator):
    order = order_place(user=alice, sku_code=sku.code, quantity=1)

    with pytest.raises(AfterSalesError, match="不能退款"):
        refund(order, operator)
