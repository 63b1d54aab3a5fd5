"""Operator alerts on a real Celery worker (Redis), racing beat workers, and locked orders."""

from __future__ import annotations

import threading
import time

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.db import connection, connections, transaction

from catalog.models import Sku
from config.celery import app as celery_app
from fulfillment.models import CardCode
from orders.models import OperatorAlert, OperatorAlertEmail, Order
from orders.services import order_place
from orders.services.operator_alerts import operator_alerts_check
from orders.tasks import operator_alerts_check_task
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _alert_settings(settings):
    settings.SITE_URL = "http://127.0.0.1:8765"
    settings.OPERATOR_ALERT_EMAILS = ["ops@example.com"]
    settings.OPERATOR_DIGEST_HOUR = 0
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def real_worker():
    """A Celery worker thread consuming from the test Redis broker."""
    from celery.contrib.testing.worker import start_worker

    celery_app.conf.task_always_eager = False
    celery_app.control.purge()
    with start_worker(
        celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10
    ):
        yield
    celery_app.conf.task_always_eager = django_settings.CELERY_TASK_ALWAYS_EAGER


def _wait_for(predicate, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _low_sku(code: str = "TX-LOW") -> Sku:
    sku = SkuFactory(code=code, low_stock_threshold=10)
    stock_codes(sku, 2)
    return sku


class BrokenBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionError("smtp down")


def test_beat_task_sends_the_digest_on_a_real_worker(real_worker):
    _low_sku()

    operator_alerts_check_task.delay()

    assert _wait_for(lambda: OperatorAlertEmail.objects.filter(status="sent").exists())
    assert [m.to for m in mail.outbox] == [["ops@example.com"]]
    assert "TX-LOW" in mail.outbox[0].body


def test_worker_retries_a_failed_send_until_the_mail_server_is_back(
    real_worker, settings
):
    settings.EMAIL_BACKEND = "tests.orders.test_operator_alerts_worker.BrokenBackend"
    _low_sku()

    operator_alerts_check()

    assert _wait_for(
        lambda: OperatorAlertEmail.objects.filter(attempts__gte=2).exists()
    )
    email = OperatorAlertEmail.objects.get()
    assert email.status in ("pending", "sending")
    assert email.last_error == "ConnectionError: smtp down"
    assert mail.outbox == []

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

    assert _wait_for(lambda: OperatorAlertEmail.objects.filter(status="sent").exists())
    assert len(mail.outbox) == 1


def _in_threads(target, n: int) -> list:
    """Run `target` in `n` threads released together; their results (or errors)."""
    barrier = threading.Barrier(n)
    results: list = []

    def run():
        try:
            barrier.wait()
            results.append(target())
        except Exception as exc:  # reported by the test (a non-int result)
            results.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_two_beat_workers_racing_send_each_digest_once(alice):
    for code in ("TX-A", "TX-B", "TX-C"):
        _low_sku(code)
    held = order_place(user=alice, sku_code="TX-A", quantity=1)
    Order.objects.filter(pk=held.pk).update(status=Order.Status.REVIEW)

    results = _in_threads(operator_alerts_check, 4)

    # Whichever workers win, each digest is written by exactly one of them.
    assert sum(results) == 2
    assert OperatorAlert.objects.filter(kind="low_stock").count() == 3
    assert sorted(OperatorAlertEmail.objects.values_list("kind", flat=True)) == [
        "low_stock",
        "review",
    ]
    assert len(mail.outbox) == 2
    (low,) = [m for m in mail.outbox if "TX-A" in m.body and "SKU" in m.subject]
    assert all(code in low.body for code in ("TX-B", "TX-C"))


def test_alert_check_never_waits_on_an_order_being_worked_on(alice):
    sku = _low_sku()
    order = order_place(user=alice, sku_code=sku.code, quantity=1)
    Order.objects.filter(pk=order.pk).update(status=Order.Status.REVIEW)
    locked, release = threading.Event(), threading.Event()

    def hold_locks():
        # What a checkout or a notify holds while it works: the order and the
        # SKU's codes (reserve, deliver), and an admin editing the SKU.
        try:
            with transaction.atomic():
                list(Order.objects.select_for_update().filter(pk=order.pk))
                list(CardCode.objects.select_for_update().filter(sku=sku))
                Sku.objects.filter(pk=sku.pk).update(name="Monthly (edited)")
                locked.set()
                release.wait(30)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_locks)
    holder.start()
    try:
        assert locked.wait(10)
        with connection.cursor() as cursor:
            # Were the check to wait on any of those locks, it would fail here.
            cursor.execute("SET lock_timeout = '3s'")
        started = time.monotonic()
        written = operator_alerts_check()
        took = time.monotonic() - started
    finally:
        release.set()
        holder.join(timeout=30)
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")

    assert written == 2  # low stock and the review digest
    assert took < 3
    assert len(mail.outbox) == 2
