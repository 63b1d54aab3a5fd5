"""WeChat Pay refunds end later: accepted (PROCESSING), then its result notify or a query.

The stand-in answers a refund PROCESSING and settles it as WeChat does, sending a
REFUND.* callback signed and AEAD-encrypted like a payment's.
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from orders.models import Order, OrderEmail, OrderEvent, PaymentNotify, Refund
from orders.services import refund_gateway_sweep, refund_request, refund_retry
from tests.orders.gateways.test_wechat_api import paid

pytestmark = pytest.mark.django_db
REFUND_NOTIFY_URL = reverse("orders:refund-notify", args=["wechat"])
LATER = dt.timedelta(minutes=2)  # past the sweep's grace for the notify


def refund_whole(order: Order, capture) -> Refund:
    order.refresh_from_db()
    line = order.lines.get()
    with capture(execute=True):
        refund = refund_request(order=order, lines=[(line, line.amount)], reason="x")
    refund.refresh_from_db()
    return refund


def post(client, callback, url=REFUND_NOTIFY_URL):
    body, headers = callback
    headers = {k: v for k, v in headers.items() if k != "Content-Type"}
    return client.post(url, data=body, content_type="application/json", headers=headers)


def refunded_emails(order: Order) -> int:
    return OrderEmail.objects.filter(order=order, kind=OrderEmail.Kind.REFUNDED).count()


@pytest.fixture
def accepted(client, wechat, order, django_capture_on_commit_callbacks):
    """A paid order whose whole refund WeChat accepted and has not settled yet."""
    wechat.refund_settle_auto = False
    paid(client, wechat, order)
    return refund_whole(order, django_capture_on_commit_callbacks)


def test_accepted_refund_waits_for_the_gateway_and_the_shopper_sees_it_in_progress(
    client, alice, wechat, order, accepted
):
    client.force_login(alice)

    page = client.get(reverse("orders:order-detail", args=[order.number]))

    order.refresh_from_db()
    assert accepted.status == Refund.Status.SUBMITTED
    assert order.refunded_amount == Decimal("0.00")  # not back yet
    assert refunded_emails(order) == 0
    assert wechat.trades[order.number].refunds[accepted.refund_no]["status"] == (
        "PROCESSING"
    )
    html = page.content.decode()
    assert "退款处理中" in html
    assert "data-refund-in-progress>¥50.00<" in html


def test_result_notify_settles_the_refund_once_and_a_replay_changes_nothing(
    client, wechat, order, accepted
):
    wechat.refund_settle(accepted.refund_no, "SUCCESS", notify=False)
    callback = wechat.refund_callback(accepted.refund_no)

    first = post(client, callback)
    again = post(client, callback)

    assert (first.status_code, first.json()) == (200, {"code": "SUCCESS"})
    assert again.status_code == 200  # acknowledged: WeChat stops retrying
    accepted.refresh_from_db()
    order.refresh_from_db()
    assert accepted.status == Refund.Status.SUCCEEDED
    assert order.refunded_amount == Decimal("50.00")
    assert order.status == Order.Status.REFUNDED
    assert refunded_emails(order) == 1
    assert (
        OrderEvent.objects.filter(
            order=order, kind="refunded", detail__refund_no=accepted.refund_no
        ).count()
        == 1
    )
    assert list(
        PaymentNotify.objects.order_by("id").values_list("outcome", "out_trade_no")
    )[-2:] == [("refund_succeeded", order.number), ("duplicate", order.number)]
    page_client = client
    page_client.force_login(order.user)
    html = page_client.get(reverse("orders:order-detail", args=[order.number]))
    assert "退款处理中" not in html.content.decode()


def test_forged_refund_notify_is_rejected_recorded_and_changes_nothing(
    client, wechat, order, accepted
):
    # Someone without WeChat's key sends a success for a refund still processing:
    # whatever they change in a signed callback breaks its signature.
    body, headers = wechat.refund_callback(accepted.refund_no, refund_status="SUCCESS")
    tampered = body.replace(b'"id":"EV-', b'"id":"EV-X', 1)
    assert tampered != body

    response = post(client, (tampered, headers))

    assert response.status_code == 400
    accepted.refresh_from_db()
    assert accepted.status == Refund.Status.SUBMITTED
    assert PaymentNotify.objects.latest("id").outcome == "bad_signature"


def test_refund_notify_encrypted_with_another_key_is_rejected(
    client, wechat, order, accepted
):
    wechat.refund_settle(accepted.refund_no, "SUCCESS", notify=False)

    response = post(
        client, wechat.refund_callback(accepted.refund_no, apiv3_key="k" * 32)
    )

    assert response.status_code == 400
    accepted.refresh_from_db()
    assert accepted.status == Refund.Status.SUBMITTED
    assert PaymentNotify.objects.latest("id").outcome == "bad_signature"


def test_refund_notify_signed_long_ago_is_a_replay_and_rejected(
    client, wechat, order, accepted
):
    wechat.refund_settle(accepted.refund_no, "SUCCESS", notify=False)
    old = int(time.time()) - 3600

    response = post(client, wechat.refund_callback(accepted.refund_no, timestamp=old))

    assert response.status_code == 400
    accepted.refresh_from_db()
    assert accepted.status == Refund.Status.SUBMITTED


def test_refund_notify_with_another_amount_or_unknown_refund_is_rejected(
    client, wechat, order, accepted
):
    wechat.refund_settle(accepted.refund_no, "SUCCESS", notify=False)
    amount = {"total": 5000, "refund": 100, "payer_total": 5000, "payer_refund": 100}

    wrong_amount = post(
        client, wechat.refund_callback(accepted.refund_no, amount=amount)
    )
    unknown = post(
        client, wechat.refund_callback(accepted.refund_no, out_refund_no="NOPE")
    )

    assert (wrong_amount.status_code, unknown.status_code) == (400, 400)
    accepted.refresh_from_db()
    assert accepted.status == Refund.Status.SUBMITTED
    assert list(
        PaymentNotify.objects.order_by("-id").values_list("outcome", flat=True)[:2]
    ) == ["unknown_refund", "amount_mismatch"]


def test_refund_notify_for_another_merchant_is_rejected(
    client, wechat, order, accepted
):
    wechat.refund_settle(accepted.refund_no, "SUCCESS", notify=False)

    response = post(
        client, wechat.refund_callback(accepted.refund_no, mchid="1900000999")
    )

    assert response.status_code == 400
    assert PaymentNotify.objects.latest("id").outcome == "invalid"


@pytest.mark.parametrize("status", ["ABNORMAL", "CLOSED"])
def test_refund_the_gateway_ends_badly_is_failed_for_an_operator(
    client, wechat, order, accepted, status
):
    wechat.refund_settle(accepted.refund_no, status, notify=False)

    response = post(client, wechat.refund_callback(accepted.refund_no))

    assert response.status_code == 200
    accepted.refresh_from_db()
    order.refresh_from_db()
    assert accepted.status == Refund.Status.FAILED
    assert status in accepted.last_error
    assert order.refunded_amount == Decimal("0.00")
    assert refunded_emails(order) == 0
    assert OrderEvent.objects.filter(order=order, kind="refund_failed").exists()
    assert PaymentNotify.objects.latest("id").outcome == "refund_failed"


def test_abnormal_refund_resolved_at_wechat_succeeds_on_the_operator_retry(
    client, wechat, order, accepted, staff, django_capture_on_commit_callbacks
):
    wechat.refund_settle(accepted.refund_no, "ABNORMAL", notify=False)
    post(client, wechat.refund_callback(accepted.refund_no))
    # The merchant resolves it on WeChat's platform: the refund ends SUCCESS there.
    record = wechat.trades[order.number].refunds[accepted.refund_no]
    wechat.trades[order.number].refunds[accepted.refund_no] = {
        **record,
        "status": "SUCCESS",
    }
    calls = wechat.refund_calls

    with django_capture_on_commit_callbacks(execute=True):
        assert refund_retry(refund_id=accepted.pk, actor=staff)

    accepted.refresh_from_db()
    order.refresh_from_db()
    assert accepted.status == Refund.Status.SUCCEEDED
    assert order.refunded_amount == Decimal("50.00")
    assert wechat.refund_calls == calls  # asked, not sent again
    assert refunded_emails(order) == 1


def test_sweep_settles_a_refund_whose_notify_never_came(wechat, order, accepted):
    now = timezone.now()

    early = refund_gateway_sweep(now=now)  # the notify gets its minute first
    still = refund_gateway_sweep(now=now + LATER)
    wechat.refund_settle(accepted.refund_no, "SUCCESS", notify=False)
    asked_too_soon = refund_gateway_sweep(now=now + LATER + dt.timedelta(minutes=1))
    settled = refund_gateway_sweep(now=now + 2 * LATER + dt.timedelta(minutes=5))
    again = refund_gateway_sweep(now=now + 4 * LATER + dt.timedelta(minutes=10))

    assert (early, still, asked_too_soon, settled, again) == (0, 0, 0, 1, 0)
    accepted.refresh_from_db()
    order.refresh_from_db()
    assert accepted.status == Refund.Status.SUCCEEDED
    assert order.refunded_amount == Decimal("50.00")
    assert refunded_emails(order) == 1


def test_sweep_fails_a_refund_the_gateway_closed(wechat, order, accepted):
    wechat.refund_settle(accepted.refund_no, "CLOSED", notify=False)

    ended = refund_gateway_sweep(now=timezone.now() + LATER)

    accepted.refresh_from_db()
    assert ended == 1
    assert accepted.status == Refund.Status.FAILED
    assert "CLOSED" in accepted.last_error


def test_notify_and_sweep_together_settle_once(client, wechat, order, accepted):
    wechat.refund_settle(accepted.refund_no, "SUCCESS", notify=False)

    swept = refund_gateway_sweep(now=timezone.now() + LATER)
    notified = post(client, wechat.refund_callback(accepted.refund_no))

    assert (swept, notified.status_code) == (1, 200)
    order.refresh_from_db()
    assert order.refunded_amount == Decimal("50.00")
    assert refunded_emails(order) == 1
    assert PaymentNotify.objects.latest("id").outcome == "duplicate"


def test_notify_before_the_worker_records_the_acceptance_still_settles_once(
    client, wechat, order, accepted
):
    # The worker that called WeChat has not yet written `submitted`.
    Refund.objects.filter(pk=accepted.pk).update(status=Refund.Status.PROCESSING)
    wechat.refund_settle(accepted.refund_no, "SUCCESS", notify=False)

    post(client, wechat.refund_callback(accepted.refund_no))
    late = Refund.objects.filter(
        pk=accepted.pk, status=Refund.Status.PROCESSING
    ).update(status=Refund.Status.SUBMITTED)  # what the worker's write does

    accepted.refresh_from_db()
    assert (late, accepted.status) == (0, Refund.Status.SUCCEEDED)
    assert refunded_emails(order) == 1


def test_refund_notify_is_404_for_a_gateway_without_refund_notifies(client, alipay):
    response = client.post(
        reverse("orders:refund-notify", args=["alipay"]), data={"x": "1"}
    )

    assert response.status_code == 404
    assert not PaymentNotify.objects.exists()


def test_operator_sees_the_refund_waiting_for_the_gateway(
    operator_client, wechat, order, accepted
):
    page = operator_client.get(reverse("admin:orders_refund_changelist"))

    assert page.status_code == 200
    assert "等待渠道退款" in page.content.decode()


@pytest.mark.django_db(transaction=True)
def test_stand_in_sends_the_result_notify_over_http_and_it_settles(
    live_server, settings, client, wechat, order
):
    settings.PAYMENT_NOTIFY_BASE_URL = live_server.url
    paid(client, wechat, order)
    order.refresh_from_db()
    line = order.lines.get()

    refund = refund_request(order=order, lines=[(line, line.amount)], reason="x")
    wechat.notifier.wait()

    refund.refresh_from_db()
    order.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED
    assert order.refunded_amount == Decimal("50.00")
    assert refunded_emails(order) == 1
    deliveries = [d for d in wechat.notifier.log if "/refund/" in d.url]
    assert [d.acknowledged for d in deliveries] == [True]


def test_refund_wechat_closed_is_asked_again_under_a_new_number_on_the_retry(
    client, wechat, order, accepted, staff, django_capture_on_commit_callbacks
):
    """A CLOSED number can never refund: the retry would fail for ever under it."""
    wechat.refund_settle(accepted.refund_no, "CLOSED", notify=False)
    post(client, wechat.refund_callback(accepted.refund_no))
    closed_no = accepted.refund_no
    wechat.refund_settle_auto = True  # this time WeChat settles at once

    with django_capture_on_commit_callbacks(execute=True):
        assert refund_retry(refund_id=accepted.pk, actor=staff)

    accepted.refresh_from_db()
    order.refresh_from_db()
    refunds = wechat.trades[order.number].refunds
    assert accepted.refund_no != closed_no
    assert refunds[closed_no]["status"] == "CLOSED"
    assert refunds[accepted.refund_no]["status"] == "SUCCESS"
    renewed = OrderEvent.objects.get(order=order, detail__replaces=closed_no)
    assert renewed.detail == {
        "refund_no": accepted.refund_no,
        "replaces": closed_no,
        "gateway_state": "CLOSED",
    }
    # Its result notify settles it, once, for the amount asked.
    post(client, wechat.refund_callback(accepted.refund_no))
    accepted.refresh_from_db()
    order.refresh_from_db()
    assert accepted.status == Refund.Status.SUCCEEDED
    assert order.refunded_amount == Decimal("50.00")
    assert refunded_emails(order) == 1


def test_refund_wechat_abnormal_keeps_its_number_on_the_retry(
    client, wechat, order, accepted, staff, django_capture_on_commit_callbacks
):
    """ABNORMAL money may still reach the shopper (settled on WeChat's platform):
    a new number could refund twice, so the retry asks under the same one."""
    wechat.refund_settle(accepted.refund_no, "ABNORMAL", notify=False)
    post(client, wechat.refund_callback(accepted.refund_no))
    number = accepted.refund_no

    with django_capture_on_commit_callbacks(execute=True):
        assert refund_retry(refund_id=accepted.pk, actor=staff)

    accepted.refresh_from_db()
    order.refresh_from_db()
    assert accepted.refund_no == number
    assert accepted.status == Refund.Status.FAILED
    assert list(wechat.trades[order.number].refunds) == [number]
    assert order.refunded_amount == Decimal("0.00")
