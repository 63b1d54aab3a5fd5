"""Refunds whose outcome is unknown, and the refund sweep on a real Celery worker.

Alipay refunds synchronously; when its answer is lost the refund goes back to
pending and the next attempt asks `refund_query` before asking again. WeChat's
accepted refunds are settled by the beat task asking its refund query.
"""

from __future__ import annotations

import datetime as dt
import time
from contextlib import contextmanager
from decimal import Decimal

import pytest
from celery.exceptions import Retry
from django.conf import settings as django_settings
from django.utils import timezone

from config.celery import app as celery_app
from orders.models import Order, OrderEmail, Refund
from orders.services import refund_flush, refund_request
from orders.tasks import refund_gateway_sweep_task
from tests.orders.gateways import test_alipay_api, test_wechat_api

LATER = dt.timedelta(minutes=2)


def methods(alipay) -> list[str]:
    return [request["method"] for request in alipay.requests]


@pytest.mark.django_db
def test_alipay_refund_whose_answer_was_lost_is_found_by_query_not_sent_twice(
    client, alipay, order, django_capture_on_commit_callbacks
):
    test_alipay_api.paid(client, alipay, order)
    order.refresh_from_db()
    line = order.lines.get()
    alipay.lose_next_answer = 1  # Alipay refunds, its answer never arrives

    with (
        pytest.raises(Retry, match="502"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        refund = refund_request(order=order, lines=[(line, line.amount)], reason="x")
    refund = Refund.objects.get()
    pending = refund.status
    done = refund_flush(now=timezone.now() + LATER)

    refund.refresh_from_db()
    order.refresh_from_db()
    assert pending == Refund.Status.PENDING
    assert (done, refund.status) == (1, Refund.Status.SUCCEEDED)
    assert order.refunded_amount == Decimal("50.00")
    assert alipay.trades[order.number].refunds == {refund.refund_no: line.amount}
    assert methods(alipay).count("alipay.trade.refund") == 1
    assert methods(alipay)[-1] == "alipay.trade.fastpay.refund.query"


@pytest.mark.django_db
def test_alipay_refund_never_received_is_sent_again_after_the_query(
    client, alipay, order, django_capture_on_commit_callbacks
):
    test_alipay_api.paid(client, alipay, order)
    order.refresh_from_db()
    line = order.lines.get()
    alipay.fail_next_http = 1  # refused at the door: Alipay saw nothing

    with (
        pytest.raises(Retry, match="502"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        refund_request(order=order, lines=[(line, line.amount)], reason="x")
    refund_flush(now=timezone.now() + LATER)

    refund = Refund.objects.get()
    assert refund.status == Refund.Status.SUCCEEDED
    assert methods(alipay)[-2:] == [
        "alipay.trade.fastpay.refund.query",
        "alipay.trade.refund",
    ]


@contextmanager
def real_worker_running():
    """A Celery worker thread consuming from the test Redis broker."""
    from celery.contrib.testing.worker import start_worker

    celery_app.conf.task_always_eager = False
    celery_app.control.purge()
    try:
        with start_worker(
            celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10
        ):
            yield
    finally:
        celery_app.conf.task_always_eager = django_settings.CELERY_TASK_ALWAYS_EAGER


def _wait_for(predicate, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.django_db(transaction=True)
def test_beat_sweep_on_a_real_worker_settles_a_refund_whose_notify_was_lost(
    client, wechat, order
):
    wechat.refund_settle_auto = False
    test_wechat_api.paid(client, wechat, order)
    order.refresh_from_db()
    line = order.lines.get()
    refund = refund_request(order=order, lines=[(line, line.amount)], reason="x")
    refund.refresh_from_db()
    accepted = refund.status
    wechat.refund_settle(refund.refund_no, "SUCCESS", notify=False)
    Refund.objects.filter(pk=refund.pk).update(
        claimed_at=timezone.now() - dt.timedelta(minutes=5)
    )

    with real_worker_running():
        refund_gateway_sweep_task.delay()
        settled = _wait_for(
            lambda: Refund.objects.filter(
                pk=refund.pk, status=Refund.Status.SUCCEEDED
            ).exists()
        )

    order.refresh_from_db()
    assert accepted == Refund.Status.SUBMITTED
    assert settled
    assert order.refunded_amount == Decimal("50.00")
    assert order.status == Order.Status.REFUNDED
    assert (
        OrderEmail.objects.filter(order=order, kind=OrderEmail.Kind.REFUNDED).count()
        == 1
    )
