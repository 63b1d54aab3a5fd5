"""Buying without an account: the checkout form, the order's keys, its access link,
codes revealed and after-sales for a guest with access (orders/guest.py)."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest
from django.contrib.auth.hashers import check_password
from django.core import mail
from django.test import Client
from django.urls import reverse

from fulfillment.models import CodeAccessLog
from orders.guest import access_token, access_url
from orders.models import Order, OrderEvent, ProblemReport, Refund
from orders.services import order_place
from risk.models import RiskEvaluation
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes
from tests.orders.aftersales.conftest import pay

pytestmark = pytest.mark.django_db

CHECKOUT = reverse("orders:checkout")
GUEST = {
    "sku": "TX-M",
    "quantity": 1,
    "token": "g1",
    "email": " Guest@Example.com ",
    "lookup_password": "secret12",
    "lookup_password2": "secret12",
}


@pytest.fixture
def sku(db):
    sku = SkuFactory(code="TX-M", price=Decimal("25.00"), product__slug="tx")
    stock_codes(sku, 5)
    return sku


def detail(number: str) -> str:
    return reverse("orders:order-detail", args=[number])


def _main(response) -> str:
    return response.content.decode().split("<main", 1)[1].split("</main>", 1)[0]


def guest_order(**kwargs) -> Order:
    return order_place(
        user=None,
        sku_code="TX-M",
        quantity=kwargs.pop("quantity", 1),
        guest_email=kwargs.pop("email", "guest@example.com"),
        guest_password=kwargs.pop("password", "secret12"),
        **kwargs,
    )


def test_a_guest_buys_with_an_email_and_a_lookup_password(client, sku):
    response = client.post(CHECKOUT, GUEST)

    assert response.status_code == 302
    assert "/pay/sandbox/" in response["Location"]
    order = Order.objects.get()
    assert order.user is None
    assert order.email == "guest@example.com"
    # Hashes only: the password with Django's hashers, the link's token by sha256.
    assert "secret12" not in order.lookup_password
    assert check_password("secret12", order.lookup_password)
    assert (
        order.access_token_hash
        == hashlib.sha256(access_token(order.number).encode()).hexdigest()
    )
    # This browser opens its order; the risk engine saw a guest with an email.
    page = client.get(detail(order.number))
    assert page.status_code == 200
    assert order.number in page.content.decode()
    evaluation = RiskEvaluation.objects.get()
    assert (evaluation.user_id, evaluation.order_id) == (None, order.id)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"email": ""}, "email", "请填写接收订单通知的邮箱"),
        ({"email": "not-an-email"}, "email", "请输入有效的邮箱地址"),
        (
            {"lookup_password": "", "lookup_password2": ""},
            "lookup_password",
            "请设置查询密码",
        ),
        (
            {"lookup_password": "abc", "lookup_password2": "abc"},
            "lookup_password",
            "查询密码至少 6 位",
        ),
        (
            {"lookup_password2": "secret13"},
            "lookup_password2",
            "两次输入的查询密码不一致",
        ),
        ({"lookup_password2": ""}, "lookup_password2", "请再次输入查询密码"),
    ],
)
def test_bad_guest_fields_come_back_at_their_fields(
    client, sku, changes, field, message
):
    response = client.post(CHECKOUT, {**GUEST, **changes})

    assert response.status_code == 400
    text = response.content.decode()
    errors = text.split(f'id="{field}-errors"', 1)
    assert len(errors) == 2, f"no errors at {field}"
    assert message in errors[1].split("</ul>", 1)[0]
    assert 'aria-invalid="true"' in text
    assert "secret1" not in text  # passwords are never sent back
    assert not Order.objects.exists()


def test_a_logged_in_shopper_sees_no_guest_fields_and_buys_as_before(
    alice_client, alice, sku
):
    page = alice_client.get(CHECKOUT, {"sku": "TX-M", "quantity": 1})
    assert 'name="email"' not in page.content.decode()

    response = alice_client.post(CHECKOUT, {"sku": "TX-M", "quantity": 1, "token": "a"})

    assert response.status_code == 302
    order = Order.objects.get()
    assert (order.user, order.lookup_password, order.access_token_hash) == (
        alice,
        "",
        "",
    )


def test_a_guests_double_click_is_one_order(client, sku):
    first = client.post(CHECKOUT, GUEST)
    again = client.post(CHECKOUT, GUEST)

    assert first.status_code == again.status_code == 302
    assert first["Location"] == again["Location"]
    assert Order.objects.count() == 1


def test_unpaid_guest_orders_are_limited_per_email(client, sku, settings):
    settings.ORDER_MAX_UNPAID_PER_USER = 1
    assert client.post(CHECKOUT, GUEST).status_code == 302

    second = client.post(CHECKOUT, {**GUEST, "token": "g2"})
    other = client.post(
        CHECKOUT, {**GUEST, "token": "g3", "email": "someone@example.com"}
    )

    assert second.status_code == 409
    assert "您已有 1 笔未支付订单" in second.content.decode()
    assert other.status_code == 302
    assert sorted(Order.objects.values_list("email", flat=True)) == [
        "guest@example.com",
        "someone@example.com",
    ]


def test_the_access_link_opens_the_order_in_another_browser(sku):
    order = guest_order()
    browser = Client()

    response = browser.get(detail(order.number), {"t": access_token(order.number)})

    # In: the token leaves the address bar, the browser keeps access.
    assert response.status_code == 302
    assert response["Location"] == detail(order.number)
    assert browser.get(detail(order.number)).status_code == 200


def test_a_wrong_token_is_the_unknown_orders_404(sku, alice):
    order = guest_order()
    account_order = order_place(user=alice, sku_code="TX-M", quantity=1)
    browser = Client()

    wrong = browser.get(detail(order.number), {"t": "x" * 43})
    empty = browser.get(detail(order.number), {"t": ""})
    unknown = browser.get(detail("KQNOSUCHORDER"), {"t": access_token("KQNOSUCH")})
    # An account's order never opens with a guest token, even its own number's.
    theirs = browser.get(
        detail(account_order.number), {"t": access_token(account_order.number)}
    )

    assert wrong.status_code == empty.status_code == unknown.status_code == 404
    assert theirs.status_code == 404
    # The same page (its header names the path: the language switch's "next").
    assert _main(wrong) == _main(unknown)
    # Without access the page answers as for any number: the login page.
    plain = browser.get(detail(order.number))
    assert plain.status_code == 302
    assert plain["Location"].startswith(reverse("account_login"))


def test_the_link_is_shown_once_after_payment_and_sent_in_the_delivery_email(
    client, sku, django_capture_on_commit_callbacks
):
    client.post(CHECKOUT, GUEST)
    order = Order.objects.get()
    link = access_url(order)
    assert link not in client.get(detail(order.number)).content.decode()  # unpaid

    with django_capture_on_commit_callbacks(execute=True):
        pay(Client(), order)

    assert link in client.get(detail(order.number)).content.decode()
    assert link not in client.get(detail(order.number)).content.decode()
    delivered = [m for m in mail.outbox if order.number in m.subject]
    assert len(delivered) == 1
    assert link in delivered[0].body
    assert link in delivered[0].alternatives[0][0].replace("&amp;", "&")
    assert link.startswith("http")  # SITE_URL-based


def test_a_guest_with_access_reveals_a_code_audited_as_a_guest(
    sku, django_capture_on_commit_callbacks
):
    order = guest_order()
    with django_capture_on_commit_callbacks(execute=True):
        pay(Client(), order)
    code = order.lines.get().codes.get()
    browser = Client()
    stranger = Client()
    browser.get(detail(order.number), {"t": access_token(order.number)})
    url = reverse("orders:code-reveal", args=[order.number, code.id])

    refused = stranger.post(url, HTTP_ACCEPT="application/json")
    shown = browser.post(url, HTTP_ACCEPT="application/json")

    assert refused.status_code == 404
    assert shown.status_code == 200
    assert shown.json()["code"].startswith("CODE")
    log = CodeAccessLog.objects.get()
    assert (log.code_id, log.actor, log.action) == (code.id, None, "revealed_by_guest")
    event = OrderEvent.objects.get(order=order, kind="code_revealed")
    assert (event.actor, event.detail["guest"]) == (None, True)


def test_a_guest_with_access_reports_a_problem_and_refunds_unseen_codes(
    sku, django_capture_on_commit_callbacks
):
    order = guest_order(quantity=2)
    with django_capture_on_commit_callbacks(execute=True):
        pay(Client(), order)
    line = order.lines.get()
    browser = Client()
    browser.get(detail(order.number), {"t": access_token(order.number)})

    reported = browser.post(
        reverse("orders:line-report", args=[order.number, line.id]),
        {"kind": "code_invalid", "message": "兑换时提示无效"},
        follow=True,
    )
    with django_capture_on_commit_callbacks(execute=True):
        refunded = browser.post(
            reverse("orders:line-refund", args=[order.number, line.id]), follow=True
        )

    assert "已收到您的问题反馈" in reported.content.decode()
    report = ProblemReport.objects.get()
    assert (report.order_id, report.reporter) == (order.id, None)
    assert "已退回 2 张未查看的卡密" in refunded.content.decode()
    assert Refund.objects.get().actor is None
    # Another browser without access gets nothing of either.
    stranger = Client()
    assert (
        stranger.post(
            reverse("orders:line-report", args=[order.number, line.id])
        ).status_code
        == 302
    )


def test_guest_orders_cannot_be_paid_or_opened_by_another_account(mallory, sku):
    order = guest_order()
    browser = Client()
    browser.force_login(mallory)

    assert browser.get(detail(order.number)).status_code == 404
    assert (
        browser.post(reverse("orders:order-pay", args=[order.number])).status_code
        == 404
    )
