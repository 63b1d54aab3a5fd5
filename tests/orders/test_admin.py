"""The orders admin is read-only; the admin site demands TOTP from staff when configured."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.urls import reverse
from django.utils import timezone

from config.admin import staff_has_totp
from orders.models import (
    Order,
    OrderEmail,
    OrderEvent,
    OrderLine,
    Payment,
    PaymentNotify,
    Refund,
    SandboxTrade,
)
from tests.factories.accounts import UserFactory
from tests.factories.catalog import SkuFactory

# Session, user, permissions, the page, two counts, date hierarchy: fixed (9 measured).
ORDER_CHANGELIST_MAX_QUERIES = 10


def _paid_order(user, *, amount: str = "25.00") -> Order:
    """A paid, partly refunded order with one of every related row."""
    now = timezone.now()
    total = Decimal(amount)
    order = Order.objects.create(
        user=user,
        email=user.email,
        status=Order.Status.PARTIALLY_REFUNDED,
        total_amount=total,
        paid_amount=total,
        refunded_amount=Decimal("5.00"),
        expires_at=now + dt.timedelta(minutes=15),
        paid_at=now,
    )
    sku = SkuFactory()
    OrderLine.objects.create(
        order=order,
        sku=sku,
        product_name=sku.product.name,
        sku_name=sku.name,
        quantity=1,
        unit_price=total,
        amount=total,
    )
    OrderEvent.objects.create(
        order=order, kind=OrderEvent.Kind.PAID, detail={"trade_no": "T1"}
    )
    payment = Payment.objects.create(
        order=order, gateway="sandbox", trade_no=f"T-{order.number}", amount=total
    )
    Refund.objects.create(
        order=order, payment=payment, amount=Decimal("5.00"), reason="部分退款"
    )
    PaymentNotify.objects.create(
        gateway="sandbox",
        payload={"out_trade_no": order.number, "total_amount": amount, "备注": "中文"},
        out_trade_no=order.number,
        trade_no=payment.trade_no,
        outcome=PaymentNotify.Outcome.PAID,
        order=order,
    )
    OrderEmail.objects.create(
        order=order, kind=OrderEmail.Kind.DELIVERED, to=user.email
    )
    SandboxTrade.objects.create(
        trade_no=f"S-{order.number}",
        out_trade_no=order.number,
        subject="测试",
        total_amount=total,
        notify_url="http://127.0.0.1/payments/notify/sandbox/",
        return_url="http://127.0.0.1/",
    )
    return order


@pytest.mark.parametrize(
    "model", ["order", "payment", "paymentnotify", "refund", "orderemail"]
)
def test_orders_changelists_render_for_operator(operator_client, alice, model):
    _paid_order(alice)

    response = operator_client.get(reverse(f"admin:orders_{model}_changelist"))

    assert response.status_code == 200


@pytest.mark.parametrize(
    "model",
    ["order", "payment", "paymentnotify", "refund", "orderemail", "sandboxtrade"],
)
def test_orders_changelists_render_for_superuser(admin_client, alice, model):
    _paid_order(alice)

    response = admin_client.get(reverse(f"admin:orders_{model}_changelist"))

    assert response.status_code == 200


def test_sandbox_trade_changelist_forbidden_for_operator(operator_client):
    response = operator_client.get(reverse("admin:orders_sandboxtrade_changelist"))

    assert response.status_code == 403


def test_order_changelist_shows_user_email_and_money(operator_client, alice):
    order = _paid_order(alice, amount="88.80")

    response = operator_client.get(reverse("admin:orders_order_changelist"))

    html = response.content.decode()
    assert order.number in html
    assert "alice@example.com" in html
    assert "88.80" in html


def test_order_changelist_query_count_does_not_grow_with_orders(
    operator_client, alice, django_assert_max_num_queries
):
    _paid_order(alice)
    with django_assert_max_num_queries(ORDER_CHANGELIST_MAX_QUERIES):
        operator_client.get(reverse("admin:orders_order_changelist"))

    for n in range(10):
        _paid_order(UserFactory(username=f"shopper{n}"))

    with django_assert_max_num_queries(ORDER_CHANGELIST_MAX_QUERIES):
        response = operator_client.get(reverse("admin:orders_order_changelist"))

    assert response.status_code == 200


def test_order_changelist_finds_order_by_number(operator_client, alice, mallory):
    order = _paid_order(alice)
    _paid_order(mallory)

    response = operator_client.get(
        reverse("admin:orders_order_changelist"), {"q": order.number}
    )

    assert response.context["cl"].result_count == 1


def test_order_change_page_is_read_only_with_every_inline(operator_client, alice):
    order = _paid_order(alice)

    response = operator_client.get(
        reverse("admin:orders_order_change", args=[order.pk])
    )

    html = response.content.decode()
    assert response.status_code == 200
    for prefix in ("lines", "payments", "refunds", "events"):
        assert f'id="{prefix}-group"' in html
    assert 'name="paid_amount"' not in html
    assert 'name="_save"' not in html
    assert "部分退款" in html


def test_order_change_post_is_forbidden_and_changes_nothing(admin_client, alice):
    order = _paid_order(alice)

    response = admin_client.post(
        reverse("admin:orders_order_change", args=[order.pk]),
        {"status": Order.Status.DELIVERED, "paid_amount": "0.01"},
    )

    order.refresh_from_db()
    assert response.status_code == 403
    assert (order.status, order.paid_amount) == (
        Order.Status.PARTIALLY_REFUNDED,
        Decimal("25.00"),
    )


@pytest.mark.parametrize(
    "model",
    ["order", "payment", "paymentnotify", "refund", "orderemail", "sandboxtrade"],
)
def test_orders_add_is_forbidden_even_for_superuser(admin_client, model):
    response = admin_client.get(reverse(f"admin:orders_{model}_add"))

    assert response.status_code == 403


def test_order_delete_is_forbidden_even_for_superuser(admin_client, alice):
    order = _paid_order(alice)

    response = admin_client.get(reverse("admin:orders_order_delete", args=[order.pk]))

    assert response.status_code == 403
    assert Order.objects.filter(pk=order.pk).exists()


def test_payment_notify_change_page_shows_payload_as_pretty_json(
    operator_client, alice
):
    order = _paid_order(alice)
    notify = PaymentNotify.objects.get(order=order)

    response = operator_client.get(
        reverse("admin:orders_paymentnotify_change", args=[notify.pk])
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "<pre" in html
    assert f"&quot;out_trade_no&quot;: &quot;{order.number}&quot;" in html
    assert "中文" in html
    assert 'name="payload"' not in html


def test_payment_notify_changelist_filters_by_outcome(operator_client, alice):
    _paid_order(alice)
    PaymentNotify.objects.create(
        gateway="sandbox", payload={}, outcome=PaymentNotify.Outcome.BAD_SIGNATURE
    )

    response = operator_client.get(
        reverse("admin:orders_paymentnotify_changelist"),
        {"outcome__exact": PaymentNotify.Outcome.BAD_SIGNATURE},
    )

    assert response.context["cl"].result_count == 1


def test_sandbox_trade_change_page_hides_the_pay_token(admin_client, alice):
    order = _paid_order(alice)
    trade = SandboxTrade.objects.get(out_trade_no=order.number)

    response = admin_client.get(
        reverse("admin:orders_sandboxtrade_change", args=[trade.pk])
    )

    assert response.status_code == 200
    assert trade.token not in response.content.decode()


# --- staff two-factor ---------------------------------------------------------


def test_admin_index_redirects_staff_without_totp_when_mfa_required(
    operator_client, operator, settings
):
    settings.STAFF_REQUIRE_MFA = True

    response = operator_client.get(reverse("admin:index"))
    login = operator_client.get(response["Location"])

    assert response.status_code == 302
    assert not staff_has_totp(operator.pk)
    assert login.status_code == 302
    assert login["Location"] == reverse("mfa_activate_totp")


def test_admin_changelist_redirects_staff_without_totp_when_mfa_required(
    operator_client, alice, settings
):
    settings.STAFF_REQUIRE_MFA = True
    _paid_order(alice)

    response = operator_client.get(reverse("admin:orders_order_changelist"))

    assert response.status_code == 302
    assert alice.email.encode() not in response.content


def test_admin_index_opens_for_staff_with_totp_when_mfa_required(
    operator_client, operator, settings
):
    settings.STAFF_REQUIRE_MFA = True
    TOTP.activate(operator, generate_totp_secret())

    response = operator_client.get(reverse("admin:index"))

    assert staff_has_totp(operator.pk)
    assert response.status_code == 200


def test_admin_index_opens_for_staff_without_totp_when_mfa_not_required(
    operator_client, settings
):
    settings.STAFF_REQUIRE_MFA = False

    response = operator_client.get(reverse("admin:index"))

    assert response.status_code == 200
