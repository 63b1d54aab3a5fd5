"""The order's 售后 page in admin: refund, 补单 and confirm paid, with errors at their fields."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from fulfillment.models import CardCode
from orders.models import Order, OrderEvent, Refund, SandboxTrade
from orders.services import order_place
from tests.factories.accounts import UserFactory
from tests.factories.orders import sandbox_trade_paid
from tests.orders.aftersales.conftest import pay

pytestmark = pytest.mark.django_db


def page(order):
    return reverse("admin:orders_order_aftersales", args=[order.pk])


def test_aftersales_page_offers_a_refund_for_a_delivered_order(
    operator_client, paid_order
):
    response = operator_client.get(page(paid_order))

    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="aftersales-refund"' in body
    assert f'name="amount_{paid_order.lines.get().id}"' in body
    assert 'id="aftersales-confirm-paid"' not in body
    assert reverse("admin:orders_order_aftersales", args=[paid_order.pk]) in (
        operator_client.get(
            reverse("admin:orders_order_change", args=[paid_order.pk])
        ).content.decode()
    )


def test_refund_form_posted_twice_refunds_once(
    operator_client, paid_order, django_capture_on_commit_callbacks
):
    line = paid_order.lines.get()
    data = {
        "action": "refund",
        "scope": "lines",
        f"amount_{line.id}": "5.00",
        "codes": "void",
        "reason": "补偿顾客",
        "request_key": "form-key-1",
    }

    with django_capture_on_commit_callbacks(execute=True):
        first = operator_client.post(page(paid_order), data)
        second = operator_client.post(page(paid_order), data)

    assert (first.status_code, second.status_code) == (302, 302)
    refund = Refund.objects.get()
    assert (refund.amount, refund.status) == (Decimal("5.00"), Refund.Status.SUCCEEDED)
    assert SandboxTrade.objects.get(trade_no="T1").refunded_amount == Decimal("5.00")


def test_refund_form_shows_a_bad_amount_at_its_field(operator_client, paid_order):
    line = paid_order.lines.get()

    response = operator_client.post(
        page(paid_order),
        {
            "action": "refund",
            "scope": "lines",
            f"amount_{line.id}": "60.00",
            "codes": "void",
            "reason": "x",
            "request_key": "k",
        },
    )

    assert response.status_code == 400
    form = response.context["refund_form"]
    assert form.errors[f"amount_{line.id}"] == ["最多可退 ¥50.00"]
    assert not Refund.objects.exists()


def test_refund_form_needs_a_reason(operator_client, paid_order):
    response = operator_client.post(
        page(paid_order),
        {"action": "refund", "scope": "whole", "codes": "void", "request_key": "k"},
    )

    assert response.status_code == 400
    assert response.context["refund_form"].errors["reason"] == ["请填写原因"]


def test_confirm_paid_refused_by_the_gateway_shows_why_at_the_trade_number(
    operator_client, alice, sku
):
    order = order_place(user=alice, sku_code=sku.code, quantity=1)
    SandboxTrade.objects.create(
        trade_no="T7",
        out_trade_no=order.number,
        subject="x",
        total_amount=order.total_amount,
        notify_url="http://127.0.0.1/",
        return_url="http://127.0.0.1/",
    )

    response = operator_client.post(
        page(order),
        {
            "action": "confirm_paid",
            "gateway": "sandbox",
            "trade_no": "T7",
            "reason": "顾客说已付款",
        },
    )

    assert response.status_code == 400
    errors = response.context["confirm_form"].errors["trade_no"]
    assert "未支付" in errors[0]
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_confirm_paid_from_admin_delivers_and_records_the_operator(
    operator_client, operator, alice, sku, django_capture_on_commit_callbacks
):
    order = order_place(user=alice, sku_code=sku.code, quantity=1)
    sandbox_trade_paid(order, trade_no="T7")

    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(
            page(order),
            {
                "action": "confirm_paid",
                "gateway": "sandbox",
                "trade_no": "T7",
                "reason": "支付截图已核对",
            },
        )

    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    assert OrderEvent.objects.get(kind="paid_confirmed").actor == operator


def test_redeliver_button_delivers_a_stuck_line(
    operator_client, client, alice, sku, django_capture_on_commit_callbacks
):
    order = order_place(user=alice, sku_code=sku.code, quantity=1)
    CardCode.objects.filter(order_line__order=order).update(
        status=CardCode.Status.AVAILABLE, order_line=None, reserved_at=None
    )
    with django_capture_on_commit_callbacks(execute=True):
        pay(client, order)
    line = order.lines.get()
    assert (
        'id="aftersales-redeliver"' in operator_client.get(page(order)).content.decode()
    )

    response = operator_client.post(
        page(order), {"action": "redeliver", "line": line.id}
    )

    assert response.status_code == 302
    line.refresh_from_db()
    assert line.status == "delivered"


def test_staff_without_the_permission_cannot_act(client, paid_order):
    viewer = UserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_order"))
    client.force_login(viewer)

    assert "提交退款" not in client.get(page(paid_order)).content.decode()
    response = client.post(
        page(paid_order),
        {
            "action": "refund",
            "scope": "whole",
            "codes": "void",
            "reason": "x",
            "request_key": "k",
        },
    )

    assert response.status_code == 403
    assert not Refund.objects.exists()


def _staff_with(client, *codenames):
    user = UserFactory(username="-".join(codenames), is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="orders", codename__in=codenames
        )
    )
    client.force_login(user)
    return user


CONFIRM_T7 = {
    "action": "confirm_paid",
    "gateway": "sandbox",
    "trade_no": "T7",
    "reason": "支付截图已核对",
}


def test_staff_with_change_order_but_not_confirm_paid_cannot_confirm_paid(
    client, alice, sku
):
    _staff_with(client, "view_order", "change_order")
    order = order_place(user=alice, sku_code=sku.code, quantity=1)
    sandbox_trade_paid(order, trade_no="T7")

    body = client.get(page(order)).content.decode()
    response = client.post(page(order), CONFIRM_T7)

    assert 'id="aftersales-confirm-paid"' not in body
    assert "确认到账需要“确认订单已支付”权限" in body
    assert response.status_code == 403
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert not OrderEvent.objects.filter(kind="paid_confirmed").exists()


def test_confirm_paid_permission_alone_confirms_but_does_not_refund(
    client, alice, sku, paid_order, django_capture_on_commit_callbacks
):
    clerk = _staff_with(client, "view_order", "confirm_paid")
    order = order_place(user=alice, sku_code=sku.code, quantity=1)
    sandbox_trade_paid(order, trade_no="T7")

    assert 'id="aftersales-confirm-paid"' in client.get(page(order)).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        confirmed = client.post(page(order), CONFIRM_T7)
    refused = client.post(
        page(paid_order),
        {
            "action": "refund",
            "scope": "whole",
            "codes": "void",
            "reason": "x",
            "request_key": "k",
        },
    )

    assert confirmed.status_code == 302
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    assert OrderEvent.objects.get(kind="paid_confirmed").actor == clerk
    assert refused.status_code == 403
    assert not Refund.objects.exists()


def test_operators_and_superusers_hold_confirm_paid(operator, admin_user):
    assert operator.has_perm("orders.confirm_paid")
    assert admin_user.has_perm("orders.confirm_paid")
    assert not UserFactory(is_staff=True).has_perm("orders.confirm_paid")
