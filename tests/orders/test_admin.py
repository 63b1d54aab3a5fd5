"""The orders admin is read-only; the admin site demands TOTP from staff when configured."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from catalog.models import Sku
from config.admin import staff_has_totp
from fulfillment.models import TopUp
from orders.models import (
    Order,
    OrderEmail,
    OrderEvent,
    OrderLine,
    Payment,
    PaymentNotify,
    Refund,
    RefundLine,
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


# --- refunds and order lines ---------------------------------------------------

# Session, user, permissions (user and group), the page's two counts, the page,
# its refund lines (one prefetch) and the date hierarchy's two: the same however
# many refunds are listed (10 measured).
REFUND_CHANGELIST_MAX_QUERIES = 10
# The order page: session, user, the order, permissions (user and group), then the
# inlines' rows: lines (with parents and top-ups) and their codes, payments, refunds
# and their lines, events: the same however many lines and refunds (11 measured).
ORDER_CHANGE_MAX_QUERIES = 11


def _bundle_order_with_refunds(user, *, operator=None) -> Order:
    """A paid order: a bundle (parent + two parts, one refunded), a top-up line,
    a failed operator refund naming two lines and a succeeded system one."""
    order = _paid_order(user, amount="70.00")
    first = order.lines.get()
    bundle = OrderLine.objects.create(
        order=order,
        sku=SkuFactory(code=f"BNDL-{order.pk}", delivery=Sku.Delivery.BUNDLE),
        delivery=Sku.Delivery.BUNDLE,
        product_name="组合",
        sku_name="双会员组合包",
        quantity=1,
        unit_price=Decimal("30.00"),
        amount=Decimal("0.00"),
        status=OrderLine.Status.DELIVERED,
        delivered_at=timezone.now(),
    )
    part = OrderLine.objects.create(
        order=order,
        parent=bundle,
        sku=SkuFactory(),
        product_name="音乐",
        sku_name="音乐月卡（组合包内）",
        quantity=1,
        unit_price=Decimal("30.00"),
        amount=Decimal("30.00"),
        refunded_amount=Decimal("30.00"),
        status=OrderLine.Status.REFUNDED,
        status_reason="买家申请售后",
    )
    topup_line = OrderLine.objects.create(
        order=order,
        sku=SkuFactory(delivery=Sku.Delivery.DIRECT_TOPUP),
        delivery=Sku.Delivery.DIRECT_TOPUP,
        product_name="视频",
        sku_name="视频直充",
        recharge_account="10086123",
        quantity=1,
        unit_price=Decimal("15.00"),
        amount=Decimal("15.00"),
        status=OrderLine.Status.DELIVERING,
    )
    TopUp.objects.create(
        order_line=topup_line,
        sku=topup_line.sku,
        recharge_account="10086123",
        quantity=1,
        deadline_at=timezone.now() + dt.timedelta(minutes=30),
    )
    payment = order.payments.get()
    failed = Refund.objects.create(
        order=order,
        payment=payment,
        amount=Decimal("35.00"),
        reason="客服退款",
        actor_kind=Refund.ActorKind.OPERATOR,
        actor=operator,
        status=Refund.Status.FAILED,
        attempts=2,
        last_error="DomainError: sandbox refuses the refund",
    )
    RefundLine.objects.create(refund=failed, line=part, amount=Decimal("30.00"))
    RefundLine.objects.create(refund=failed, line=first, amount=Decimal("5.00"))
    return order


def _refund_action(client, *refunds):
    return client.post(
        reverse("admin:orders_refund_changelist"),
        {"action": "retry_failed_refunds", "_selected_action": [r.pk for r in refunds]},
        follow=True,
    )


def test_refund_changelist_shows_status_actor_lines_attempts_and_error(
    operator_client, alice, operator
):
    _bundle_order_with_refunds(alice, operator=operator)

    response = operator_client.get(
        reverse("admin:orders_refund_changelist"), {"status__exact": "failed"}
    )

    html = response.content.decode()
    (refund,) = response.context["cl"].result_list
    assert refund.status == Refund.Status.FAILED
    for shown in (
        "失败",
        "运营",
        "operator",
        "客服退款",
        "音乐月卡（组合包内） × 1：¥30.00",
        "¥5.00",
        "sandbox refuses the refund",
    ):
        assert shown in html
    assert 'href="?status__exact=failed"' in html  # the status filter offers "failed"


def test_refund_changelist_query_count_does_not_grow_with_refunds(
    operator_client, alice, django_assert_max_num_queries
):
    _bundle_order_with_refunds(alice)
    with django_assert_max_num_queries(REFUND_CHANGELIST_MAX_QUERIES):
        operator_client.get(reverse("admin:orders_refund_changelist"))

    for n in range(6):
        _bundle_order_with_refunds(UserFactory(username=f"refunded{n}"))

    with django_assert_max_num_queries(REFUND_CHANGELIST_MAX_QUERIES):
        response = operator_client.get(reverse("admin:orders_refund_changelist"))

    assert response.context["cl"].result_count == 14


def test_retry_failed_refunds_resubmits_failed_ones_and_skips_the_rest(
    operator_client, alice, operator, django_capture_on_commit_callbacks
):
    order = _bundle_order_with_refunds(alice)
    failed = order.refunds.get(status=Refund.Status.FAILED)
    pending = order.refunds.get(status=Refund.Status.PENDING)

    with django_capture_on_commit_callbacks() as callbacks:
        response = _refund_action(operator_client, failed, pending)

    failed.refresh_from_db()
    pending.refresh_from_db()
    messages = [str(m) for m in response.context["messages"]]
    assert failed.status == Refund.Status.PENDING
    assert pending.status == Refund.Status.PENDING
    assert len(callbacks) == 1  # one submit queued, for the failed one only
    assert "已重新提交 1 笔失败的退款。" in messages
    assert any("跳过 1 笔" in m and pending.refund_no in m for m in messages)
    event = order.events.get(kind=OrderEvent.Kind.REFUND_REQUESTED)
    assert (event.actor, event.detail["retry"]) == (operator, True)


def test_retry_failed_refunds_is_not_offered_without_change_refund(client, alice):
    order = _bundle_order_with_refunds(alice)
    failed = order.refunds.get(status=Refund.Status.FAILED)
    viewer = UserFactory(username="refund-viewer", is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_refund", content_type__app_label="orders")
    )
    client.force_login(viewer)

    page = client.get(reverse("admin:orders_refund_changelist"))
    response = _refund_action(client, failed)

    failed.refresh_from_db()
    assert page.status_code == 200
    assert "retry_failed_refunds" not in page.content.decode()
    assert response.status_code == 200
    assert failed.status == Refund.Status.FAILED
    assert not order.events.filter(kind=OrderEvent.Kind.REFUND_REQUESTED).exists()


def test_order_page_shows_line_states_refunds_accounts_parents_and_topup(
    operator_client, alice, operator
):
    order = _bundle_order_with_refunds(alice, operator=operator)
    bundle = order.lines.get(delivery=Sku.Delivery.BUNDLE)
    topup = TopUp.objects.get(order_line__order=order)

    response = operator_client.get(
        reverse("admin:orders_order_change", args=[order.pk])
    )

    html = response.content.decode()
    assert response.status_code == 200
    for shown in (
        "已退款",  # the refunded part's state
        "发货中",  # the top-up line's state
        "买家申请售后",
        "30.00",
        "10086123",
        f"#{bundle.pk} 双会员组合包",
        reverse("admin:fulfillment_topup_change", args=[topup.pk]),
        "sandbox refuses the refund",
        "客服退款",
    ):
        assert shown in html
    assert (
        reverse("admin:orders_refund_change", args=[order.refunds.first().pk]) in html
    )


def test_order_page_query_count_does_not_grow_with_lines_and_refunds(
    operator_client, alice, django_assert_max_num_queries
):
    order = _bundle_order_with_refunds(alice)
    url = reverse("admin:orders_order_change", args=[order.pk])
    operator_client.get(url)  # content types cached
    with django_assert_max_num_queries(ORDER_CHANGE_MAX_QUERIES):
        operator_client.get(url)

    payment = order.payments.get()
    for n in range(5):
        line = OrderLine.objects.create(
            order=order,
            sku=SkuFactory(delivery=Sku.Delivery.DIRECT_TOPUP),
            delivery=Sku.Delivery.DIRECT_TOPUP,
            product_name="视频",
            sku_name=f"视频直充 {n}",
            recharge_account=f"1008600{n}",
            quantity=1,
            unit_price=Decimal("1.00"),
            amount=Decimal("1.00"),
            refunded_amount=Decimal("1.00"),
            status=OrderLine.Status.REFUNDED,
        )
        TopUp.objects.create(
            order_line=line,
            sku=line.sku,
            recharge_account=line.recharge_account,
            quantity=1,
            status=TopUp.Status.FAILED,
            deadline_at=timezone.now(),
        )
        refund = Refund.objects.create(
            order=order, payment=payment, amount=Decimal("1.00"), reason="x"
        )
        RefundLine.objects.create(refund=refund, line=line, amount=Decimal("1.00"))

    with django_assert_max_num_queries(ORDER_CHANGE_MAX_QUERIES):
        response = operator_client.get(url)

    assert "视频直充 4" in response.content.decode()
