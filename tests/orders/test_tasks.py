"""The email outbox with a real Celery worker on Redis, and with the broker down."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from config.celery import app as celery_app
from fulfillment.models import CardCode
from orders.models import Order, OrderEmail
from orders.services import order_email_flush, order_place
from orders.services.emails import DRAIN_DELAY
from orders.tasks import order_expire_unpaid_task
from tests.conftest import signed_notify
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def real_worker():
    """A Celery worker thread consuming from the test Redis broker."""
    from celery.contrib.testing.worker import start_worker

    # An email drain an earlier test published (and its gate) outlives that
    # test by up to a window: let it close, then drop what is queued.
    time.sleep(DRAIN_DELAY)
    celery_app.conf.task_always_eager = False
    celery_app.control.purge()
    with start_worker(
        celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10
    ):
        yield
    celery_app.conf.task_always_eager = True


@pytest.fixture
def broker_down():
    """Point Celery at a port where nothing listens, as when Redis is down."""
    celery_app.conf.task_always_eager = False
    celery_app.conf.broker_url = "redis://127.0.0.1:1/0"
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    yield
    celery_app.conf.broker_url = django_settings.CELERY_BROKER_URL
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    celery_app.conf.task_always_eager = True


@pytest.fixture
def paid_order(client, alice):
    sku = SkuFactory(code="TX-VIP-MONTH")
    stock_codes(sku, 2)
    order = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)

    def pay():
        client.post(
            reverse("orders:payment-notify", args=["sandbox"]), signed_notify(order)
        )
        return order

    return pay


def _wait_for(predicate, seconds=15.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_delivery_email_sent_by_real_worker(real_worker, paid_order):
    order = paid_order()

    assert _wait_for(
        lambda: OrderEmail.objects.filter(order=order, status="sent").exists()
    )
    email = OrderEmail.objects.get(order=order)
    assert email.queued_at is not None
    assert email.attempts == 1
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]


def test_burst_of_paid_orders_sent_once_each_by_few_drains(
    real_worker, pay_orders, monkeypatch
):
    from orders.tasks import order_email_drain_task

    published = []
    publish = order_email_drain_task.apply_async

    def counting(*args, **kwargs):
        published.append(kwargs)
        return publish(*args, **kwargs)

    monkeypatch.setattr(order_email_drain_task, "apply_async", counting)

    pay_orders(4)

    assert _wait_for(lambda: OrderEmail.objects.filter(status="sent").count() == 4)
    time.sleep(DRAIN_DELAY)  # any later drain finds nothing left to send
    assert sorted(m.to[0] for m in mail.outbox) == ["alice@example.com"] * 4
    assert set(OrderEmail.objects.values_list("attempts", flat=True)) == {1}
    # One drain per window (a slow machine may take two windows for the four).
    assert 1 <= len(published) <= 2
    assert all(p["countdown"] == DRAIN_DELAY for p in published)


def test_expiry_task_cancels_overdue_order_on_real_worker(real_worker, alice):
    sku = SkuFactory(code="TX-VIP-MONTH")
    stock_codes(sku, 1)
    order = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)
    Order.objects.filter(pk=order.pk).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )

    order_expire_unpaid_task.delay()

    assert _wait_for(lambda: Order.objects.get(pk=order.pk).status == "cancelled")
    assert CardCode.objects.get().status == "available"


def test_email_kept_in_outbox_when_broker_down_and_flushed_later(
    broker_down, paid_order
):
    order = paid_order()

    email = OrderEmail.objects.get(order=order)
    assert (email.status, email.queued_at) == ("pending", None)
    assert mail.outbox == []

    celery_app.conf.task_always_eager = True
    sent_now = order_email_flush()  # too early: the task might still be on its way
    OrderEmail.objects.filter(pk=email.pk).update(
        created_at=email.created_at.replace(year=2000)
    )
    sent_later = order_email_flush()
    again = order_email_flush()

    assert (sent_now, sent_later, again) == (0, 1, 0)
    assert len(mail.outbox) == 1
    order.refresh_from_db()
    assert order.status == "delivered"


def test_refund_flush_submits_refund_whose_task_was_lost(broker_down, client, alice):
    from orders.models import Refund, SandboxTrade
    from orders.services import refund_flush

    sku = SkuFactory(code="TX-VIP-MONTH")
    stock_codes(sku, 1)
    order = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)
    client.post(
        reverse("orders:payment-notify", args=["sandbox"]),
        signed_notify(order, trade_no="A"),
    )
    SandboxTrade.objects.create(
        trade_no="B",
        out_trade_no=order.number,
        subject="x",
        total_amount=order.total_amount,
        notify_url="http://127.0.0.1/",
        return_url="http://127.0.0.1/",
        status="paid",
    )
    client.post(
        reverse("orders:payment-notify", args=["sandbox"]),
        signed_notify(order, trade_no="B"),
    )
    refund = Refund.objects.get()
    assert refund.status == "pending"  # the broker was down: no task ran

    celery_app.conf.task_always_eager = True
    assert refund_flush() == 0  # too fresh: its task may still be on the way
    Refund.objects.filter(pk=refund.pk).update(
        created_at=refund.created_at.replace(year=2000)
    )

    assert refund_flush() == 1
    refund.refresh_from_db()
    order.refresh_from_db()
    assert refund.status == "succeeded"
    assert order.refunded_amount == order.total_amount
    assert refund_flush() == 0
