"""WeChat Pay v3 over real HTTP against its stand-in: Native page, H5, query, close, refunds."""

from __future__ import annotations

import time
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.core import signing
from django.urls import resolve, reverse

from orders.gateways import GatewayError, GatewayUnavailable, gateway_get
from orders.gateways.standins.keys import private_pem, public_pem, rsa_key
from orders.gateways.wechat_page import PAGE_SALT
from orders.models import Order, Payment, Refund
from orders.services import order_cancel, refund_request
from tests.orders.gateways.conftest import PHONE

pytestmark = pytest.mark.django_db
UNREACHABLE = "http://127.0.0.1:9/payments/notify/wechat/"
BACK = "http://testserver/orders/back/"


def start(order, **kwargs):
    return gateway_get("wechat").payment_start(
        order=order, notify_url=UNREACHABLE, return_url=BACK, **kwargs
    )


def checkout(client, sku, **headers):
    return client.post(
        reverse("orders:checkout"),
        {"sku": sku.code, "quantity": 1, "token": "t1", "gateway": "wechat"},
        headers=headers,
    )


def paid(client, wechat, order) -> Payment:
    start(order)
    wechat.pay(order.number)
    body, headers = wechat.callback(order.number)
    response = client.post(
        reverse("orders:payment-notify", args=["wechat"]),
        data=body,
        content_type="application/json",
        headers={k: v for k, v in headers.items() if k != "Content-Type"},
    )
    assert response.status_code == 200
    return Payment.objects.get(order=order)


def test_native_pay_page_shows_the_qr_code_and_polls_from_a_file(
    alice_client, wechat, sku
):
    response = checkout(alice_client, sku)
    page = alice_client.get(response["Location"])

    assert response["Location"].startswith("/pay/wechat/")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<svg role="img" viewBox=' in html
    assert 'class="wechat-pay__qr"' in html
    assert "微信支付二维码" in html  # the SVG's accessible title
    assert "¥25.00" in html
    assert "js/wechat_pay.js" in html
    assert "<script>" not in html  # nothing inline: a strict CSP allows it


def test_native_pay_page_status_follows_the_order(alice_client, wechat, sku):
    pay_page = checkout(alice_client, sku)["Location"]
    status_url = pay_page + "status/"
    order = Order.objects.get()

    waiting = alice_client.get(status_url).json()
    wechat.pay(order.number)
    Order.objects.filter(pk=order.pk).update(status=Order.Status.DELIVERED)
    done = alice_client.get(status_url).json()

    assert (waiting["status"], waiting["done"]) == ("pending", False)
    assert (done["status"], done["done"]) == ("delivered", True)
    assert done["next"].endswith(
        reverse("orders:order-detail", args=[order.number]) + "?paying=wechat"
    )
    assert alice_client.get(pay_page).status_code == 302


def test_pay_page_with_a_forged_token_is_404(client, wechat):
    assert client.get("/pay/wechat/not-a-token/").status_code == 404
    assert client.get("/pay/wechat/not-a-token/status/").status_code == 404


def test_phone_goes_to_wechat_h5_and_comes_back(alice_client, wechat, sku):
    response = checkout(alice_client, sku, **{"User-Agent": PHONE})

    location = response["Location"]
    assert response.status_code == 302
    assert location.startswith(wechat.base_url + "/h5pay/")
    back = parse_qs(urlsplit(location).query)["redirect_url"][0]
    order = Order.objects.get()
    assert back.endswith(
        reverse("orders:order-detail", args=[order.number]) + "?paying=wechat"
    )
    assert wechat.trades[order.number].trade_type == "MWEB"


def _page(url: str) -> dict[str, str]:
    """The pay page's signed contents (its token also carries the second it was made)."""
    token = resolve(urlsplit(url).path).kwargs["token"]
    return signing.loads(token, salt=PAGE_SALT)


def test_native_asked_twice_gets_the_same_code(wechat, order):
    first = _page(start(order))
    time.sleep(1.05)  # across a second boundary: the tokens differ, the page does not

    assert _page(start(order)) == first
    assert first["c"].startswith("weixin://")
    assert len(wechat.trades) == 1


def test_query_follows_the_trade(wechat, order):
    gateway = gateway_get("wechat")

    assert gateway.query(out_trade_no=order.number) is None
    start(order)
    assert gateway.query(out_trade_no=order.number).status == "waiting"
    wechat.pay(order.number)

    answer = gateway.query(out_trade_no=order.number)

    assert (answer.status, answer.amount) == ("success", order.total_amount)
    assert answer.trade_no == wechat.trades[order.number].transaction_id


def test_cancelled_order_closes_its_trade(
    wechat, order, django_capture_on_commit_callbacks
):
    start(order)

    with django_capture_on_commit_callbacks(execute=True):
        order_cancel(order_id=order.id, reason="shopper")

    assert wechat.trades[order.number].state == "CLOSED"
    with pytest.raises(GatewayError, match="ORDER_CLOSED"):
        start(order)


def test_close_is_quiet_when_never_opened_and_refused_when_paid(wechat, order):
    gateway = gateway_get("wechat")
    gateway.close(out_trade_no=order.number)
    start(order)
    wechat.pay(order.number)

    with pytest.raises(GatewayError, match="ORDERPAID"):
        gateway.close(out_trade_no=order.number)


def test_refund_asked_twice_refunds_once(client, wechat, order):
    payment = paid(client, wechat, order)
    gateway = gateway_get("wechat")

    gateway.refund(payment=payment, amount=Decimal("20.00"), refund_no="R1")
    gateway.refund(payment=payment, amount=Decimal("20.00"), refund_no="R1")

    trade = wechat.trades[order.number]
    assert list(trade.refunds) == ["R1"]
    assert trade.refunded == 2000
    state = gateway.refund_query(payment=payment, refund_no="R1")
    assert (state.status, state.amount) == ("succeeded", Decimal("20.00"))
    assert gateway.refund_query(payment=payment, refund_no="R2") is None


def test_refund_over_what_was_paid_is_refused(client, wechat, order):
    payment = paid(client, wechat, order)

    with pytest.raises(GatewayError, match="INVALID_REQUEST"):
        gateway_get("wechat").refund(
            payment=payment, amount=Decimal("50.01"), refund_no="R1"
        )

    assert wechat.trades[order.number].refunds == {}


def test_refund_service_goes_through_wechat_and_waits_for_its_result(
    client, wechat, order, django_capture_on_commit_callbacks
):
    paid(client, wechat, order)
    order.refresh_from_db()
    line = order.lines.get()

    with django_capture_on_commit_callbacks(execute=True):
        refund = refund_request(order=order, lines=[(line, line.amount)], reason="x")

    refund.refresh_from_db()
    # Accepted (PROCESSING) is not done: its notify or the sweep ends it.
    assert refund.status == Refund.Status.SUBMITTED
    assert list(wechat.trades[order.number].refunds) == [refund.refund_no]


def test_answer_signed_by_another_platform_key_is_not_trusted(settings, wechat, order):
    settings.WECHAT_PAY_PUBLIC_KEY = public_pem(rsa_key())

    with pytest.raises(GatewayUnavailable, match="signature"):
        start(order)


def test_request_signed_with_a_wrong_merchant_key_is_refused(settings, wechat, order):
    settings.WECHAT_PAY_PRIVATE_KEY = private_pem(rsa_key())

    with pytest.raises(GatewayError, match="SIGN_ERROR"):
        start(order)

    assert wechat.trades == {}


@pytest.mark.django_db(transaction=True)
def test_shopper_pays_on_a_phone_and_the_callback_over_http_delivers(
    live_server, settings, wechat, alice, client, sku
):
    settings.PAYMENT_NOTIFY_BASE_URL = live_server.url
    client.force_login(alice)
    response = checkout(client, sku, **{"User-Agent": PHONE})
    order = Order.objects.get()

    cashier = httpx.post(response["Location"], data={"action": "pay"}, timeout=5)
    wechat.notifier.wait()

    assert cashier.status_code == 302
    assert cashier.headers["location"].endswith(
        reverse("orders:order-detail", args=[order.number]) + "?paying=wechat"
    )
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    assert [d.acknowledged for d in wechat.notifier.log] == [True]


def test_native_pay_page_speaks_english(alice_client, settings, wechat, sku):
    pay_page = checkout(alice_client, sku)["Location"]
    alice_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"

    html = alice_client.get(pay_page).content.decode()

    assert "Pay with WeChat" in html
    assert "<title>WeChat Pay QR code</title>" in html
    assert "Waiting for payment…" in html


def test_checkout_when_wechat_refuses_lands_on_the_order_page(
    alice_client, settings, wechat, sku
):
    settings.WECHAT_PAY_PRIVATE_KEY = private_pem(rsa_key())

    response = checkout(alice_client, sku)

    order = Order.objects.get()
    assert response["Location"] == reverse("orders:order-detail", args=[order.number])
    page = alice_client.get(response["Location"])
    assert "支付渠道暂时不可用" in page.content.decode()
    assert order.status == Order.Status.PENDING
