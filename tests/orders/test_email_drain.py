"""The email outbox's drain: one published task per window sends what is pending."""

from __future__ import annotations

import time

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.utils import timezone

from config.celery import app as celery_app
from orders.models import OrderEmail
from orders.services import (
    order_email_dispatch,
    order_email_drain,
    order_email_flush,
)
from orders.services.emails import DRAIN_DELAY, FLUSH_AFTER
from orders.tasks import order_email_drain_task

pytestmark = pytest.mark.django_db


@pytest.fixture
def publishes(monkeypatch):
    """Tasks queued, not run: the drain's publishes, recorded (a gate left by an
    earlier test has closed first)."""
    time.sleep(DRAIN_DELAY)
    celery_app.conf.task_always_eager = False
    published = []
    monkeypatch.setattr(
        order_email_drain_task,
        "apply_async",
        lambda *args, **kwargs: published.append(kwargs),
    )
    yield published
    celery_app.conf.task_always_eager = True


@pytest.fixture
def pending_emails(pay_orders, publishes, django_capture_on_commit_callbacks):
    """Three paid orders whose delivery emails wait in the outbox."""
    with django_capture_on_commit_callbacks(execute=True):
        pay_orders(3)
    celery_app.conf.task_always_eager = True
    return list(OrderEmail.objects.order_by("id"))


def test_paid_orders_in_one_window_publish_one_drain(pending_emails, publishes):
    assert [e.status for e in pending_emails] == ["pending"] * 3
    assert len(publishes) == 1
    assert publishes[0]["countdown"] == DRAIN_DELAY
    assert mail.outbox == []


def test_order_email_dispatch_publishes_again_after_the_window(publishes):
    first = order_email_dispatch()
    second = order_email_dispatch()
    time.sleep(DRAIN_DELAY)
    third = order_email_dispatch()

    assert (first, second, third) == (True, True, True)
    assert len(publishes) == 2


def test_order_email_dispatch_publishes_every_time_when_redis_down(publishes, settings):
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            "BACKEND": "config.lib.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        },
    }

    order_email_dispatch()
    order_email_dispatch()

    assert len(publishes) == 2


def test_order_email_drain_sends_each_pending_email_once(pending_emails):
    queued_at = timezone.now()

    sent = order_email_drain(queued_at=queued_at)
    again = order_email_drain(queued_at=queued_at)  # a redelivered task

    assert (sent, again) == (3, 0)
    assert len(mail.outbox) == 3
    for email in OrderEmail.objects.all():
        assert (email.status, email.attempts) == ("sent", 1)
        assert email.queued_at == max(queued_at, email.created_at)


def test_order_email_drain_skips_email_another_worker_is_sending(pending_emails):
    claimed = pending_emails[0]
    OrderEmail.objects.filter(pk=claimed.pk).update(
        status="sending", claimed_at=timezone.now(), attempts=1
    )

    sent = order_email_drain()

    assert sent == 2
    claimed.refresh_from_db()
    assert claimed.status == "sending"
    assert len(mail.outbox) == 2


def test_order_email_drain_leaves_failed_email_to_the_flush(
    pending_emails, monkeypatch
):
    failing = pending_emails[0]  # the drain sends the oldest first
    real_send = EmailMultiAlternatives.send

    def send(message, *args, **kwargs):
        if not hasattr(send, "failed"):
            send.failed = True
            raise ConnectionError("smtp down")
        return real_send(message, *args, **kwargs)

    monkeypatch.setattr(EmailMultiAlternatives, "send", send)

    first = order_email_drain()
    second = order_email_drain()  # a later order's drain does not retry it
    failing.refresh_from_db()
    state = (failing.status, failing.attempts, failing.last_error)
    OrderEmail.objects.filter(pk=failing.pk).update(
        created_at=failing.created_at - FLUSH_AFTER
    )
    flushed = order_email_flush()

    assert (first, second, flushed) == (2, 0, 1)
    assert state == ("pending", 1, "ConnectionError: smtp down")
    failing.refresh_from_db()
    assert (failing.status, failing.attempts) == ("sent", 2)
    assert len(mail.outbox) == 3
