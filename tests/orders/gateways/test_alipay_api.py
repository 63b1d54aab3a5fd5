"""Alipay over real HTTP against its stand-in: pay pages, query, close, refunds."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from celery.exceptions import Retry
from django.urls import reverse
from django.utils import timezone

from orders.gateways import GatewayError, GatewayUnavailable, gateway_get
from orders.gateways.standins.keys import private_pem, public_pem, rsa_key
from orders.models import Order, Payment, Refund
from orders.services import order_cancel, order_expire_unpaid, refund_request
from tests.orders.gateways.conftest import PHONE, cashier_submit

pytestmark = pytest.mark.django_db
UNREACHABLE = "http://127.0.0.1:9/payments/notify/alipay/"
BACK = "http://127.0.0.1:9/back/"


def start(order, **kwargs):
    return gateway_get("alipay").payment_start(
        order=order, notify_url=UNREACHABLE, return_url=BACK, **kwargs
    )


def paid(client, alipay, order) -> Payment:
    """Paid at the cashier; the notify reaches the shop."""
    cashier_submit(start(order))
    response = client.post(
        reverse("orders:payment-notify", args=["alipay"]),
        alipay.notify_fields(order.number),
    )
    assert response.content == b"success"
    return Payment.objects.get(order=order)


def assert_cannot_pay(url: str) -> None:
    page = httpx.get(url, timeout=5)
    assert "TRADE_CLOSED" in page.text
    assert "确认付款" not in page.text


def method_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["method"][0]


def test_desktop_gets_page_pay_and_phone_gets_wap_pay(alipay, order):
    assert method_of(start(order)) == "alipay.trade.page.pay"
    assert method_of(start(order, client="phone")) == "alipay.trade.wap.pay"


def test_pay_url_is_signed_and_expires_with_the_order(alipay, order):
    url = start(order)

    page = httpx.get(url, timeout=5)

    assert page.status_code == 200
    assert "确认付款" in page.text
    trade = alipay.trades[order.number]
    assert trade.total_amount == order.total_amount
    assert trade.expires_at == order.expires_at.replace(microsecond=0)


def test_checkout_redirects_a_phone_to_wap_pay(alice_client, settings, alipay, sku):
    settings.PAYMENT_SANDBOX_ENABLED = False

    response = alice_client.post(
        reverse("orders:checkout"),
        {"sku": sku.code, "quantity": 1, "token": "t1", "gateway": "alipay"},
        headers={"User-Agent": PHONE},
    )

    assert response.status_code == 302
    assert response["Location"].startswith(alipay.gateway_url)
    assert method_of(response["Location"]) == "alipay.trade.wap.pay"


def test_query_follows_the_trade(client, alipay, order):
    gateway = gateway_get("alipay")

    assert gateway.query(out_trade_no=order.number) is None
    httpx.get(start(order), timeout=5)
    assert gateway.query(out_trade_no=order.number).status == "waiting"
    cashier_submit(start(order))

    answer = gateway.query(out_trade_no=order.number)

    assert answer.status == "success"
    assert answer.amount == order.total_amount
    assert answer.trade_no == alipay.trades[order.number].trade_no


def test_cancelled_order_closes_its_trade_and_cannot_be_paid(
    alipay, order, django_capture_on_commit_callbacks
):
    url = start(order)
    httpx.get(url, timeout=5)

    with django_capture_on_commit_callbacks(execute=True):
        order_cancel(order_id=order.id, reason="shopper")

    assert alipay.trades[order.number].status == "TRADE_CLOSED"
    assert_cannot_pay(url)
    assert gateway_get("alipay").query(out_trade_no=order.number).status == "closed"


def test_close_is_quiet_for_a_trade_never_opened_or_already_closed(alipay, order):
    gateway = gateway_get("alipay")

    gateway.close(out_trade_no=order.number)  # never opened at Alipay
    httpx.get(start(order), timeout=5)
    gateway.close(out_trade_no=order.number)
    gateway.close(out_trade_no=order.number)

    assert alipay.trades[order.number].status == "TRADE_CLOSED"


def test_close_refuses_for_a_paid_trade(alipay, order):
    cashier_submit(start(order))

    with pytest.raises(GatewayError, match=r"ACQ\.TRADE_STATUS_ERROR"):
        gateway_get("alipay").close(out_trade_no=order.number)


def test_expired_order_cannot_be_paid_at_the_cashier(alipay, order):
    Order.objects.filter(pk=order.pk).update(
        expires_at=timezone.now() - timezone.timedelta(minutes=1)
    )
    order.refresh_from_db()
    url = start(order)

    order_expire_unpaid()

    assert_cannot_pay(url)
    assert alipay.trades[order.number].status == "TRADE_CLOSED"


def test_refund_asked_twice_refunds_once(client, alipay, order):
    payment = paid(client, alipay, order)
    gateway = gateway_get("alipay")

    gateway.refund(payment=payment, amount=Decimal("20.00"), refund_no="R1")
    gateway.refund(payment=payment, amount=Decimal("20.00"), refund_no="R1")

    assert alipay.trades[order.number].refunds == {"R1": Decimal("20.00")}
    state = gateway.refund_query(payment=payment, refund_no="R1")
    assert (state.status, state.amount) == ("succeeded", Decimal("20.00"))
    assert gateway.refund_query(payment=payment, refund_no="R2") is None


def test_refund_over_what_was_paid_is_refused(client, alipay, order):
    payment = paid(client, alipay, order)
    gateway = gateway_get("alipay")
    gateway.refund(payment=payment, amount=Decimal("40.00"), refund_no="R1")

    with pytest.raises(GatewayError, match="REFUND_AMT_NOT_EQUAL_TOTAL"):
        gateway.refund(payment=payment, amount=Decimal("20.00"), refund_no="R2")

    assert list(alipay.trades[order.number].refunds) == ["R1"]


def test_refund_service_goes_through_alipay(
    client, alipay, order, django_capture_on_commit_callbacks
):
    paid(client, alipay, order)
    order.refresh_from_db()
    line = order.lines.get()

    with django_capture_on_commit_callbacks(execute=True):
        refund = refund_request(
            order=order, lines=[(line, line.amount)], reason="code invalid"
        )

    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert alipay.trades[order.number].refunds == {refund.refund_no: line.amount}
    assert alipay.trades[order.number].status == "TRADE_CLOSED"  # refunded in full


def test_unreachable_alipay_leaves_the_refund_to_retry(
    client, alipay, order, django_capture_on_commit_callbacks
):
    paid(client, alipay, order)
    order.refresh_from_db()
    line = order.lines.get()
    alipay.fail_next_http = 1

    # The task retries later (Celery eager mode raises its Retry).
    with (
        pytest.raises(Retry, match="502"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        refund_request(order=order, lines=[(line, line.amount)], reason="x")

    refund = Refund.objects.get()
    assert refund.status == Refund.Status.PENDING
    assert alipay.trades[order.number].refunds == {}


def test_reply_signed_by_another_key_is_not_trusted(settings, alipay, order):
    settings.ALIPAY_PUBLIC_KEY = public_pem(rsa_key())

    with pytest.raises(GatewayUnavailable, match="signature"):
        gateway_get("alipay").query(out_trade_no=order.number)


def test_request_signed_with_a_wrong_app_key_is_refused(settings, alipay, order):
    settings.ALIPAY_APP_PRIVATE_KEY = private_pem(rsa_key())

    with pytest.raises(GatewayError, match="invalid-signature"):
        gateway_get("alipay").query(out_trade_no=order.number)


@pytest.mark.django_db(transaction=True)
def test_shopper_pays_at_alipay_and_the_notify_over_http_delivers(
    live_server, settings, alipay, alice, client, sku
):
    settings.PAYMENT_NOTIFY_BASE_URL = live_server.url
    client.force_login(alice)
    response = client.post(
        reverse("orders:checkout"),
        {"sku": sku.code, "quantity": 1, "token": "t1", "gateway": "alipay"},
    )
    order = Order.objects.get()

    back = cashier_submit(response["Location"])
    alipay.notifier.wait()

    assert back.status_code == 302
    assert back.headers["location"].startswith(
        "http://testserver" + reverse("orders:order-detail", args=[order.number])
    )
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    assert [d.acknowledged for d in alipay.notifier.log] == [True]
