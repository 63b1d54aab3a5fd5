"""Alipay notifies, signed RSA2 by the stand-in exactly as Alipay signs them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from fulfillment.models import CardCode
from orders.gateways import gateway_get
from orders.gateways.standins.alipay import AlipayStandin
from orders.gateways.standins.keys import public_pem, rsa_key
from orders.models import Order, Payment, PaymentNotify
from tests.factories.fulfillment import available
from tests.orders.gateways.conftest import ALIPAY_APP_ID, cashier_submit

pytestmark = pytest.mark.django_db
NOTIFY_URL = reverse("orders:payment-notify", args=["alipay"])
# Nothing listens there: the stand-in's own notify fails, the test posts it instead.
UNREACHABLE = "http://127.0.0.1:9/payments/notify/alipay/"


def paid_at_alipay(alipay: AlipayStandin, order: Order) -> None:
    """The shopper opened Alipay's cashier for the order and paid."""
    gateway = gateway_get("alipay")
    url = gateway.payment_start(
        order=order, notify_url=UNREACHABLE, return_url="http://127.0.0.1:9/back/"
    )
    assert cashier_submit(url).status_code == 302


def post(client, fields):
    return client.post(NOTIFY_URL, fields)


def test_good_notify_is_acknowledged_and_delivers(client, alipay, order):
    paid_at_alipay(alipay, order)

    response = post(client, alipay.notify_fields(order.number))

    assert (response.status_code, response.content) == (200, b"success")
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    assert order.lines.get().codes.filter(status=CardCode.Status.SOLD).count() == 2
    payment = Payment.objects.get()
    assert (payment.gateway, payment.trade_no, payment.amount) == (
        "alipay",
        alipay.trades[order.number].trade_no,
        order.total_amount,
    )
    assert PaymentNotify.objects.get().outcome == PaymentNotify.Outcome.PAID


def test_forged_notify_is_rejected_recorded_and_changes_nothing(client, alipay, order):
    paid_at_alipay(alipay, order)
    fields = alipay.notify_fields(order.number)
    fields["total_amount"] = "0.01"  # changed after Alipay signed

    response = post(client, fields)

    assert (response.status_code, response.content) == (400, b"fail")
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert not Payment.objects.exists()
    assert PaymentNotify.objects.get().outcome == PaymentNotify.Outcome.BAD_SIGNATURE


def test_notify_signed_by_another_key_is_rejected(client, alipay, app_key, order):
    paid_at_alipay(alipay, order)
    impostor = AlipayStandin(app_id=ALIPAY_APP_ID, app_public_key=public_pem(app_key))
    impostor.trades = alipay.trades
    fields = impostor.notify_fields(order.number)
    impostor.stop()

    response = post(client, fields)

    assert response.status_code == 400
    assert PaymentNotify.objects.get().outcome == PaymentNotify.Outcome.BAD_SIGNATURE
    assert not Payment.objects.exists()


def test_replayed_notify_is_acknowledged_and_harmless(client, alipay, order):
    paid_at_alipay(alipay, order)
    fields = alipay.notify_fields(order.number)

    first = post(client, fields)
    second = post(client, fields)

    assert (first.content, second.content) == (b"success", b"success")
    assert Payment.objects.count() == 1
    assert order.lines.get().codes.filter(status=CardCode.Status.SOLD).count() == 2
    assert list(
        PaymentNotify.objects.order_by("id").values_list("outcome", flat=True)
    ) == ["paid", "duplicate"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("app_id", "2021000000009999"), ("seller_id", "2088000000009999")],
)
def test_notify_for_another_app_or_seller_is_rejected(
    client, alipay, order, field, value
):
    paid_at_alipay(alipay, order)

    response = post(client, alipay.notify_fields(order.number, **{field: value}))

    assert response.status_code == 400
    notify = PaymentNotify.objects.get()
    assert notify.outcome == PaymentNotify.Outcome.INVALID
    assert field in notify.message
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_notify_with_wrong_amount_is_rejected(client, alipay, order):
    paid_at_alipay(alipay, order)

    response = post(client, alipay.notify_fields(order.number, total_amount="49.99"))

    assert response.status_code == 400
    assert PaymentNotify.objects.get().outcome == PaymentNotify.Outcome.AMOUNT_MISMATCH
    assert not Payment.objects.exists()


def test_trade_finished_after_trade_success_pays_once(client, alipay, order):
    paid_at_alipay(alipay, order)
    post(client, alipay.notify_fields(order.number))
    alipay.finish(order.number)

    response = post(client, alipay.notify_fields(order.number))

    assert response.content == b"success"
    assert alipay.notify_fields(order.number)["trade_status"] == "TRADE_FINISHED"
    assert Payment.objects.count() == 1
    assert PaymentNotify.objects.order_by("-id").first().outcome == "duplicate"
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED


def test_trade_finished_alone_counts_as_paid(client, alipay, order):
    paid_at_alipay(alipay, order)
    alipay.finish(order.number)

    response = post(client, alipay.notify_fields(order.number))

    assert response.content == b"success"
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED


def test_notify_for_closed_trade_cancels_pending_order(client, alipay, order, sku):
    url = gateway_get("alipay").payment_start(
        order=order, notify_url=UNREACHABLE, return_url="http://127.0.0.1:9/back/"
    )
    cashier_submit(url, action="cancel")

    response = post(client, alipay.notify_fields(order.number))

    assert response.content == b"success"
    assert alipay.trades[order.number].status == "TRADE_CLOSED"
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert available(sku) == 3
    assert PaymentNotify.objects.get().outcome == PaymentNotify.Outcome.CLOSED


def test_closed_notify_after_payment_changes_nothing(client, alipay, order):
    paid_at_alipay(alipay, order)
    post(client, alipay.notify_fields(order.number))

    response = post(
        client, alipay.notify_fields(order.number, trade_status="TRADE_CLOSED")
    )

    assert response.content == b"success"
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED


def test_notify_that_is_not_final_is_not_acted_on(client, alipay, order):
    paid_at_alipay(alipay, order)

    response = post(
        client, alipay.notify_fields(order.number, trade_status="WAIT_BUYER_PAY")
    )

    assert response.status_code == 400
    assert PaymentNotify.objects.get().outcome == PaymentNotify.Outcome.INVALID
    assert not Payment.objects.exists()


def test_notify_missing_its_signature_is_rejected(client, alipay, order):
    paid_at_alipay(alipay, order)
    fields = alipay.notify_fields(order.number)
    del fields["sign"]

    response = post(client, fields)

    assert response.status_code == 400
    assert PaymentNotify.objects.get().outcome == PaymentNotify.Outcome.INVALID


def test_alipay_notify_is_404_while_alipay_is_off(client, settings, order):
    settings.PAYMENT_ALIPAY_ENABLED = False

    response = post(client, {"out_trade_no": order.number, "sign": "x"})

    assert response.status_code == 404
    assert not PaymentNotify.objects.exists()


def test_wrong_key_for_alipay_replies_means_no_notify_verifies(
    client, settings, alipay, order
):
    paid_at_alipay(alipay, order)
    settings.ALIPAY_PUBLIC_KEY = public_pem(rsa_key())

    response = post(client, alipay.notify_fields(order.number))

    assert response.status_code == 400
    assert PaymentNotify.objects.get().outcome == PaymentNotify.Outcome.BAD_SIGNATURE
