"""Webhooks (SPEC §4.4) in-process: signed, retried with backoff for a day, every attempt recorded."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.utils import timezone

from distribution.models import WebhookAttempt, WebhookDelivery
from distribution.partners.signing import webhook_sign
from distribution.webhooks import (
    retry_delay,
    webhook_deliver,
    webhook_delivery_list_for_reseller,
    webhook_enqueue,
    webhook_secret_set,
    webhook_sweep,
)
from orders.models import Order
from tests.distribution.api.receiver import WebhookReceiver

pytestmark = pytest.mark.django_db

SECRET = "whsec-test-secret"


@pytest.fixture
def receiver(settings):
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True
    hook = WebhookReceiver(script=[500, 200])
    yield hook
    hook.stop()


@pytest.fixture
def hooked(acme, receiver):
    acme.account.webhook_url = receiver.url
    acme.account.save()
    webhook_secret_set(account=acme.account, secret=SECRET)
    return acme


def test_delivered_partner_order_posts_a_signed_event_retried_until_2xx(
    api, hooked, receiver, card_sku, django_capture_on_commit_callbacks, settings
):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 1
    with django_capture_on_commit_callbacks(execute=True):
        placed = api.order("A-1").json()
    delivery = WebhookDelivery.objects.get()
    # The first POST (eager, after commit) got a 500.
    assert delivery.status == WebhookDelivery.Status.PENDING
    assert delivery.next_attempt_at > timezone.now()

    later = delivery.next_attempt_at + dt.timedelta(seconds=1)
    assert webhook_deliver(delivery_id=delivery.pk, now=later).delivered

    attempts = list(
        WebhookAttempt.objects.order_by("number").values_list(
            "number", "succeeded", "response_code", "error"
        )
    )
    assert attempts == [(1, False, 500, "HTTP 500"), (2, True, 200, "")]
    assert WebhookDelivery.objects.get().status == WebhookDelivery.Status.DELIVERED
    first, second = receiver.received
    assert first.body == second.body
    event = json.loads(second.body)
    assert event["event"] == "order.delivered"
    assert event["order"] == placed
    stamp = second.headers["X-Timestamp"]
    assert second.headers["X-Signature"] == webhook_sign(
        secret=SECRET, timestamp=stamp, body=second.body
    )
    assert list(
        webhook_delivery_list_for_reseller(reseller_id=hooked.account.reseller_id)
    ) == [delivery]


def test_a_delivery_is_not_sent_before_its_time_nor_twice(
    hooked, receiver, api, card_sku
):
    api.order("A-1")  # on_commit not run: nothing sent yet
    order = Order.objects.get()
    delivery = webhook_enqueue(order_id=order.pk, status="delivered")

    assert webhook_enqueue(order_id=order.pk, status="delivered") is None
    assert (
        webhook_deliver(
            delivery_id=delivery.pk,
            now=delivery.next_attempt_at - dt.timedelta(seconds=1),
        ).claimed
        is False
    )
    assert webhook_deliver(delivery_id=delivery.pk).claimed is True  # 500
    assert webhook_deliver(delivery_id=delivery.pk).claimed is False  # not due yet
    assert len(receiver.received) == 1


def test_retries_back_off_and_give_up_after_a_day(hooked, api, card_sku, settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 30
    receiver_always_failing = hooked.account
    receiver_always_failing.webhook_url = "http://127.0.0.1:9/closed"  # nothing listens
    receiver_always_failing.save()
    api.order("A-1")
    delivery = webhook_enqueue(order_id=Order.objects.get().pk, status="delivered")

    assert [retry_delay(n) for n in (1, 2, 3, 8, 30)] == [30, 60, 120, 3600, 3600]
    now = timezone.now()
    for _ in range(100):  # bounded: a bug must fail, not hang
        result = webhook_deliver(delivery_id=delivery.pk, now=now)
        assert result.claimed
        assert not result.delivered
        if result.retry_in is None:
            break
        now += dt.timedelta(seconds=result.retry_in + 1)

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.attempts >= 20
    assert now - delivery.created_at < dt.timedelta(days=1, hours=2)
    errors = set(WebhookAttempt.objects.values_list("error", flat=True))
    assert all(e.startswith("Connect") for e in errors)
    assert webhook_sweep(now=now + dt.timedelta(days=2)) == 0


def test_no_webhook_for_a_storefront_order_nor_without_a_url(api, acme, card_sku):
    api.order("A-1")
    order = Order.objects.get()

    assert webhook_enqueue(order_id=order.pk, status="delivered") is None  # no URL set
    assert webhook_enqueue(order_id=order.pk + 999, status="delivered") is None
    assert not WebhookDelivery.objects.exists()
    assert Decimal(api.get("/api/v1/balance").json()["balance"]) == Decimal("73.00")
