"""The Celery app and every periodic task, in one place."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals
from celery.schedules import crontab
from django.db import close_old_connections
from kombu.entity import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("kaquan")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _close_old_connections(sender: Any = None, **kwargs: Any) -> None:
    """After each task, what Django does after each request: drop a connection
    that broke (an error, then a failed `SELECT 1`) or outlived CONN_MAX_AGE.

    CELERY_DB_REUSE_MAX keeps connections between tasks; without this, a
    connection PostgreSQL dropped would fail every task of its worker until the
    next scheduled reconnect. Eager tasks run inside a request (or a test's
    transaction): the request's own handling applies there.
    """
    if sender is not None and getattr(sender.request, "is_eager", False):
        return
    close_old_connections()


signals.task_postrun.connect(_close_old_connections, weak=False)


# Top-ups wait on suppliers (slow, retried with backoff): their own queue keeps
# them from delaying emails, notifies and sweeps on the default queue. Both are
# declared, so a worker started without -Q consumes both. Each has its own
# exchange and key: a bare Queue("topups") is bound like the default queue (to
# exchange "celery", key "celery"), so a message sent there would reach both.
# (kombu's constructors are untyped.)
app.conf.task_queues = tuple(
    Queue(name, Exchange(name, type="direct"), routing_key=name)  # type: ignore[no-untyped-call]
    for name in ("celery", "topups")
)
app.conf.task_routes = {
    "fulfillment.tasks.topup_*": {"queue": "topups"},
    # Card restocks wait on the same suppliers.
    "fulfillment.tasks.card_restock_*": {"queue": "topups"},
}

app.conf.beat_schedule = {
    # every minute: cancel unpaid orders past their payment deadline, release codes
    "orders-expire-unpaid": {
        "task": "orders.tasks.order_expire_unpaid_task",
        "schedule": crontab(minute="*"),
    },
    # every minute: ask the gateways about pending orders about to expire and
    # honour a payment whose notify never came
    "orders-lost-notify-sweep": {
        "task": "orders.tasks.payment_lost_notify_sweep_task",
        "schedule": crontab(minute="*"),
    },
    # every minute: the sandbox gateway re-sends notifies never acknowledged
    # (their task was lost while the broker was down, or ran out of retries)
    "orders-sandbox-notify-sweep": {
        "task": "orders.tasks.sandbox_notify_sweep_task",
        "schedule": crontab(minute="*"),
    },
    # every 2 minutes: send order emails that could not be queued (broker was down)
    "orders-email-outbox-flush": {
        "task": "orders.tasks.order_email_flush_task",
        "schedule": crontab(minute="*/2"),
    },
    # every 2 minutes: submit refunds whose task was lost (broker was down)
    "orders-refund-flush": {
        "task": "orders.tasks.refund_flush_task",
        "schedule": crontab(minute="*/2"),
    },
    # every 2 minutes: ask the gateways about refunds they accepted but have not
    # settled (WeChat Pay) and record how they ended, where no notify said so
    "orders-refund-gateway-sweep": {
        "task": "orders.tasks.refund_gateway_sweep_task",
        "schedule": crontab(minute="*/2"),
    },
    # every 10 minutes: mark codes past their batch expiry as expired
    "fulfillment-expire-codes": {
        "task": "fulfillment.tasks.card_code_expire_task",
        "schedule": crontab(minute="*/10"),
    },
    # every 5 seconds: queue the top-ups whose next look at the supplier is due
    "fulfillment-topup-sweep": {
        "task": "fulfillment.tasks.topup_sweep_task",
        "schedule": 5.0,
    },
    # every 5 minutes: flag top-ups past their deadline for an operator, query them
    "fulfillment-topup-reconcile": {
        "task": "fulfillment.tasks.topup_reconcile_task",
        "schedule": crontab(minute="*/5"),
    },
    # every minute: ask each enabled supplier for its balance and product list
    # (top-ups are sellable only while a supplier is known to be up and funded)
    "fulfillment-supplier-refresh": {
        "task": "fulfillment.tasks.supplier_refresh_all_task",
        "schedule": crontab(minute="*"),
    },
    # every 2 minutes: buy supplier cards for card SKUs below their low-stock
    # threshold, and queue the open restocks whose next look is due
    "fulfillment-card-restock-check": {
        "task": "fulfillment.tasks.card_restock_check_task",
        "schedule": crontab(minute="*/2"),
    },
    # every 10 minutes: alert operators to SKUs running low (once a day per SKU)
    # and, from OPERATOR_DIGEST_HOUR on, to orders waiting on a human (once a day)
    "orders-operator-alerts": {
        "task": "orders.tasks.operator_alerts_check_task",
        "schedule": crontab(minute="*/10"),
    },
    # every 10 minutes: commission past its settlement window becomes available
    "distribution-commission-settle": {
        "task": "distribution.tasks.commission_settle_task",
        "schedule": crontab(minute="*/10"),
    },
    # hourly, at minute 7 (off the top of the hour): write the commission a
    # failed ledger hook left out (the commissions_catch_up command, idempotent)
    "distribution-commissions-catch-up": {
        "task": "distribution.tasks.commissions_catch_up_task",
        "schedule": crontab(minute="7"),
    },
    # every minute: queue partner webhooks that are due (retries later than 5 min, lost ones)
    "distribution-webhook-sweep": {
        "task": "distribution.tasks.webhook_sweep_task",
        "schedule": crontab(minute="*"),
    },
    # every 5 minutes: forget partner API nonces older than 15 minutes
    "distribution-api-nonces-purge": {
        "task": "distribution.tasks.api_nonces_purge_task",
        "schedule": crontab(minute="*/5"),
    },
}
