"""The Celery app and every periodic task, in one place."""

from __future__ import annotations

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("kaquan")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

app.conf.beat_schedule = {
    # every minute: cancel unpaid orders past their payment deadline, release codes
    "orders-expire-unpaid": {
        "task": "orders.tasks.order_expire_unpaid_task",
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
    # every 10 minutes: mark codes past their batch expiry as expired
    "fulfillment-expire-codes": {
        "task": "fulfillment.tasks.card_code_expire_task",
        "schedule": crontab(minute="*/10"),
    },
}
