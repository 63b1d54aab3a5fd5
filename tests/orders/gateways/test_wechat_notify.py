"""WeChat Pay callbacks, signed and AEAD-encrypted by the stand-in as WeChat does."""

from __future__ import annotations

import json
import secrets
import time

import pytest
from django.urls import reverse

from orders.gateways import gateway_get
from orders.gateways.standins.wechat import WechatStandin
from orders.models import Order, Payment, PaymentNotify

pytestmark = pytest.mark.django_db
NOTIFY_URL = reverse("orders:payment-notify", args=["wechat"])
UNREACHABLE = "http://127.0.0.1:9/payments/notify/wechat/"


def paid_at_wechat(wechat: WechatStandin, order: Order) -> None:
    """A Native trade was opened for the order and the shopper scanned and paid."""
    gateway_get("wechat").payment_start(
        order=order, notify_url=UNREACHABLE, return_url="http://127.0.0.1:9/back/"
    )
    wechat.pay(order.number)


def post(client, callback):
    body, headers = callback
    headers = {k: v for k, v in headers.items() if k != "Content-Type"}
    return client.post(
        NOTIFY_URL, data=body, content_type="application/json", headers=headers
    )


def test_good_callback_is_acknowledged_and_delivers(client, wechat, order):
    paid_at_wechat(wechat, order)

    response = post(client, wechat.callback(order.number))

    assert response.status_code == 200
    assert response.json() == {"code": "SUCCESS"}
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    payment = Payment.objects.get()
    assert (payment.gateway, payment.trade_no, payment.amount) == (
        "wechat",
        wechat.trades[order.number].transaction_id,
        order.total_amount,
    )
    notify = PaymentNotify.objects.get()
    assert notify.outcome == PaymentNotify.Outcome.PAID
    assert notify.notify_id.startswith("EV-")
    assert notify.payload["wechatpay-serial"] == wechat.public_key_id


def test_forged_callback_is_rejected_and_changes_nothing(client, wechat, order):
    paid_at_wechat(wechat, order)
    body, headers = wechat.callback(order.number)
    envelope = json.loads(body)
    envelope["summary"] = "tampered"

    response = post(client, (json.dumps(envelope).encode(), headers))

    assert response.status_code == 400
    assert response.json()["code"] == "FAIL"
    assert PaymentNotify.objects.get().outcome == PaymentNotify.Outcome.BAD_SIGNATURE
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_callback_encrypted_with_another_key_is_rejected(client, wechat, order):
    paid_at_wechat(wechat, order)

    response = post(
        client, wechat.callback(order.number, apiv3_key=secrets.token_hex(16))
    )

    assert response.status_code == 400
    assert PaymentNotify.objects.get().outcome == PaymentNotify.Outcome.BAD_SIGNATURE


def test_replayed_callback_is_acknowledged_and_harmless(client, wechat, order):
    paid_at_wechat(wechat, order)
    callback = wechat.callback(order.number)

    first = post(client, callback)
    second = post(client, callback)

    assert (first.status_code, second.status_code) == (200, 200)
    assert Payment.objects.count() == 1
    assert list(
        PaymentNotify.objects.order_by("id").values_list("outcome", flat=True)
    ) == ["paid", "duplicate"]


def test_callback_signed_long_ago_is_rejected(client, wechat, order):
    paid_at_wechat(wechat, order)

    response = post(
        client, wechat.callback(order.number, timestamp=int(time.time()) - 3600)
    )

    assert response.status_code == 400
    assert PaymentNotify.objects.get().outcome == PaymentNotify.Outcome.BAD_SIGNATURE
    assert not Payment.objects.exists()


@pytest.mark.parametrize(
    ("field", "value"), [("mchid", "1900009999"), ("appid", "wx0000000000000000")]
)
def test_callback_for_another_merchant_or_app_is_rejected(
    client, wechat, order, field, value
):
    paid_at_wechat(wechat, order)

    response = post(client, wechat.callback(order.number, **{field: value}))

    assert response.status_code == 400
    notify = PaymentNotify.objects.get()
    assert notify.outcome == PaymentNotify.Outcome.INVALID
    assert field in notify.message
    assert not Payment.objects.exists()


def test_callback_with_wrong_amount_is_rejected(client, wechat, order):
    paid_at_wechat(wechat, order)

    response = post(
        client,
        wechat.callback(
            order.number,
            amount={"total": 1, "payer_total": 1, "currency": "CNY"},
        ),
    )

    assert response.status_code == 400
    assert PaymentNotify.objects.get().outcome == PaymentNotify.Outcome.AMOUNT_MISMATCH
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_callback_for_an_unpaid_trade_is_not_acted_on(client, wechat, order):
    gateway_get("wechat").payment_start(
        order=order, notify_url=UNREACHABLE, return_url="http://127.0.0.1:9/back/"
    )

    response = post(client, wechat.callback(order.number))

    assert response.status_code == 400
    assert PaymentNotify.objects.get().outcome == PaymentNotify.Outcome.INVALID
    assert not Payment.objects.exists()


def test_callback_without_signature_headers_is_rejected(client, wechat, order):
    paid_at_wechat(wechat, order)
    body, _headers = wechat.callback(order.number)

    response = client.post(NOTIFY_URL, data=body, content_type="application/json")

    assert response.status_code == 400
    assert PaymentNotify.objects.get().outcome == PaymentNotify.Outcome.INVALID


def test_callback_for_a_closed_trade_after_cancel_is_honoured(
    client, wechat, order, django_capture_on_commit_callbacks
):
    """Paid in the moment before the close: the payment is still honoured (SPEC §3)."""
    from orders.services import order_cancel

    paid_at_wechat(wechat, order)
    with django_capture_on_commit_callbacks(execute=True):
        order_cancel(order_id=order.id, reason="payment_timeout")

    response = post(client, wechat.callback(order.number))

    assert response.status_code == 200
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
