from __future__ import annotations

from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.urls import reverse

from fulfillment.models import CardCode
from orders.gateways import sandbox
from orders.models import (
    Order,
    OrderEmail,
    Payment,
    PaymentNotify,
    Refund,
    SandboxTrade,
)
from orders.services import order_cancel, order_place
from tests.conftest import signed_notify
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import available, stock_codes
from tests.factories.orders import sandbox_trade_paid

pytestmark = pytest.mark.django_db
NOTIFY_URL = reverse("orders:payment-notify", args=["sandbox"])


@pytest.fixture
def sku():
    sku = SkuFactory(code="TX-VIP-MONTH")
    stock_codes(sku, ["TXCODE000001", "TXCODE000002", "TXCODE000003"])
    return sku


@pytest.fixture
def order(alice, sku):
    return order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=2)


def notify(client, fields):
    return client.post(NOTIFY_URL, fields)


def paid_trade(order, trade_no="T1"):
    """The gateway's side of a paid trade, as the sandbox page leaves it."""
    return sandbox_trade_paid(order, trade_no=trade_no)


def test_notify_pays_and_delivers_within_the_request(
    client, order, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = notify(client, signed_notify(order))

    assert (response.status_code, response.content) == (200, b"success")
    assert response["Content-Type"].startswith("text/plain")
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    assert order.paid_amount == order.total_amount
    assert order.lines.get().codes.filter(status=CardCode.Status.SOLD).count() == 2
    assert Payment.objects.get().amount == order.total_amount
    assert PaymentNotify.objects.get().outcome == PaymentNotify.Outcome.PAID
    assert list(order.events.values_list("kind", flat=True)) == [
        "placed",
        "paid",
        "delivered",
        "email_sent",
    ]


def test_notify_delivery_email_links_order_but_never_contains_code(
    client, order, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        notify(client, signed_notify(order))

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["alice@example.com"]
    body = message.body + "".join(str(alt[0]) for alt in message.alternatives)
    assert f"/orders/{order.number}/" in body
    assert "TXCODE" not in body
    assert OrderEmail.objects.get().status == OrderEmail.Status.SENT


def test_notify_repeated_changes_nothing_twice(
    client, order, django_capture_on_commit_callbacks
):
    fields = signed_notify(order)
    with django_capture_on_commit_callbacks(execute=True):
        notify(client, fields)
    with django_capture_on_commit_callbacks(execute=True):
        again = notify(client, {**signed_notify(order)})

    assert again.content == b"success"
    assert Payment.objects.count() == 1
    assert len(mail.outbox) == 1
    assert list(
        PaymentNotify.objects.order_by("id").values_list("outcome", flat=True)
    ) == ["paid", "duplicate"]
    order.refresh_from_db()
    assert order.paid_amount == order.total_amount


@pytest.mark.parametrize(
    ("tamper", "outcome"),
    [
        (lambda f: {**f, "sign": "0" * 64}, "bad_signature"),
        (lambda f: {**f, "total_amount": "0.01"}, "bad_signature"),
        (lambda f: {k: v for k, v in f.items() if k != "sign"}, "invalid"),
        (lambda f: {k: v for k, v in f.items() if k != "trade_no"}, "invalid"),
    ],
    ids=["forged-sign", "amount-changed-after-signing", "unsigned", "missing-field"],
)
def test_notify_rejected_and_recorded_when_not_authentic(
    client, order, tamper, outcome
):
    response = notify(client, tamper(signed_notify(order)))

    assert response.status_code == 400
    assert response.content != b"success"
    recorded = PaymentNotify.objects.get()
    assert recorded.outcome == outcome
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert not Payment.objects.exists()
    assert not CardCode.objects.filter(status=CardCode.Status.SOLD).exists()


def test_notify_for_unknown_order_is_rejected_and_recorded(client, order):
    fields = sandbox.notify_fields(
        out_trade_no="KQNOTANORDER0000000",
        trade_no="T9",
        amount=Decimal("45.00"),
        status=sandbox.TRADE_SUCCESS,
    )

    response = notify(client, fields)

    assert response.status_code == 400
    assert PaymentNotify.objects.get().outcome == "unknown_order"
    assert not Payment.objects.exists()


def test_notify_with_wrong_amount_is_rejected_and_recorded(client, order):
    response = notify(
        client, signed_notify(order, amount=order.total_amount - Decimal("0.01"))
    )

    assert response.status_code == 400
    recorded = PaymentNotify.objects.get()
    assert (recorded.outcome, recorded.order) == ("amount_mismatch", order)
    assert not Payment.objects.exists()
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_notify_replaying_a_trade_on_another_order_pays_nothing(
    client, alice, order, sku
):
    notify(client, signed_notify(order, trade_no="T1"))
    other = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)

    response = notify(client, signed_notify(other, trade_no="T1"))

    assert response.content == b"success"  # the gateway's trade is known: ack it
    assert list(Payment.objects.values_list("order_id", flat=True)) == [order.pk]
    replayed = PaymentNotify.objects.order_by("id").last()
    assert (replayed.outcome, replayed.order_id) == ("duplicate", other.pk)
    other.refresh_from_db()
    assert (other.status, other.paid_amount) == (Order.Status.PENDING, 0)


def test_notify_with_malformed_amount_is_rejected(client, order):
    fields = {k: v for k, v in signed_notify(order).items() if k != "sign"}
    fields["total_amount"] = "45.005"
    fields["sign"] = sandbox.sign(fields, django_settings.SANDBOX_PAY_SECRET)

    response = notify(client, fields)

    assert response.status_code == 400
    assert PaymentNotify.objects.get().outcome == "invalid"


def test_notify_for_unknown_gateway_is_404(client, order):
    response = client.post(
        reverse("orders:payment-notify", args=["nopay"]), signed_notify(order)
    )

    assert response.status_code == 404


def test_notify_closed_cancels_pending_order_and_releases_codes(client, order, sku):
    response = notify(client, signed_notify(order, status=sandbox.TRADE_CLOSED))

    assert response.content == b"success"
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert available(sku) == 3


def test_notify_for_cancelled_order_re_reserves_and_delivers_when_stock_allows(
    client, order, sku
):
    order_cancel(order_id=order.pk, reason="payment_timeout")

    response = notify(client, signed_notify(order))

    assert response.content == b"success"
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    assert order.lines.get().codes.filter(status=CardCode.Status.SOLD).count() == 2
    assert order.events.filter(kind="reopened").exists()
    assert available(sku) == 1


def test_notify_for_cancelled_order_refunds_when_stock_gone(
    client, alice, mallory, order, sku, django_capture_on_commit_callbacks
):
    order_cancel(order_id=order.pk, reason="payment_timeout")
    order_place(
        user=mallory, sku_code="TX-VIP-MONTH", quantity=2
    )  # takes 2 of the 3 codes
    paid_trade(order)

    with django_capture_on_commit_callbacks(execute=True):
        response = notify(client, signed_notify(order))

    assert response.content == b"success"
    order.refresh_from_db()
    assert order.status == Order.Status.REFUNDED
    assert (order.paid_amount, order.refunded_amount) == (
        order.total_amount,
        order.total_amount,
    )
    refund = Refund.objects.get()
    assert (refund.status, refund.amount) == (
        Refund.Status.SUCCEEDED,
        order.total_amount,
    )
    assert SandboxTrade.objects.get(trade_no="T1").refunded_amount == order.total_amount
    assert PaymentNotify.objects.get().outcome == "refunded"
    assert available(sku) == 1  # the partial re-reservation was rolled back
    assert not CardCode.objects.filter(order_line__order=order).exists()


def test_second_payment_for_delivered_order_is_refunded(
    client, order, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        notify(client, signed_notify(order, trade_no="T1"))
    paid_trade(order, trade_no="T2")

    with django_capture_on_commit_callbacks(execute=True):
        response = notify(client, signed_notify(order, trade_no="T2"))

    assert response.content == b"success"
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    assert order.paid_amount == 2 * order.total_amount
    assert order.refunded_amount == order.total_amount
    assert Refund.objects.get().payment.trade_no == "T2"


def test_refund_submit_is_idempotent(client, order, django_capture_on_commit_callbacks):
    from orders.services import refund_submit

    with django_capture_on_commit_callbacks(execute=True):
        notify(client, signed_notify(order, trade_no="T1"))
    paid_trade(order, trade_no="T2")
    with django_capture_on_commit_callbacks(execute=True):
        notify(client, signed_notify(order, trade_no="T2"))
    refund = Refund.objects.get()

    assert refund_submit(refund_id=refund.pk) is False
    order.refresh_from_db()
    assert order.refunded_amount == order.total_amount
    assert SandboxTrade.objects.get(trade_no="T2").refunded_amount == order.total_amount


def test_money_reconciles_across_payments_and_refunds(
    client, alice, sku, django_capture_on_commit_callbacks
):
    """Every yuan: sum of payments - sum of refunds == sum over orders of paid - refunded."""
    stock_codes(sku, 5)
    first = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)
    second = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=2)
    with django_capture_on_commit_callbacks(execute=True):
        notify(client, signed_notify(first, trade_no="A"))
        notify(client, signed_notify(second, trade_no="B"))
    paid_trade(first, trade_no="C")
    with django_capture_on_commit_callbacks(execute=True):
        notify(client, signed_notify(first, trade_no="C"))

    paid = sum(p.amount for p in Payment.objects.all())
    refunded = sum(r.amount for r in Refund.objects.filter(status="succeeded"))
    net = sum(o.paid_amount - o.refunded_amount for o in Order.objects.all())
    assert paid - refunded == net == first.total_amount + second.total_amount
    assert all(isinstance(v, Decimal) for v in (paid, refunded, net))
