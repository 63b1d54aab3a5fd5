"""The restock tasks: the beat check opens and sweeps, steps run on the topups queue."""

from __future__ import annotations

import datetime as dt

import pytest
from celery.schedules import crontab
from django.utils import timezone

from config.celery import app as celery_app
from fulfillment.models import CardRestock
from fulfillment.tasks import card_restock_advance_task, card_restock_check_task
from tests.factories.fulfillment import stock_codes
from tests.fulfillment.restock.conftest import THRESHOLD

pytestmark = pytest.mark.django_db

RS = CardRestock.Status


def test_card_restock_tasks_run_on_the_topups_queue_and_the_check_every_two_minutes():
    router = celery_app.amqp.router

    for task in (card_restock_advance_task, card_restock_check_task):
        assert router.route({}, task.name)["queue"].name == "topups"
    (entry,) = (
        e
        for e in celery_app.conf.beat_schedule.values()
        if e["task"] == card_restock_check_task.name
    )
    assert entry["schedule"] == crontab(minute="*/2")


def test_card_restock_check_task_places_then_sweeps_the_due_restock_to_success(
    card_sku, sim_supplier, supplier_simulator, django_capture_on_commit_callbacks
):
    stock_codes(card_sku, 1)

    with django_capture_on_commit_callbacks(execute=True):
        assert card_restock_check_task.delay().get() == 1

    restock = CardRestock.objects.get()
    assert restock.status == RS.PLACED  # the first step ran: placed, polled later
    assert restock.next_poll_at > timezone.now()
    number = restock.customer_order_no
    supplier_simulator.wait_for(
        lambda: supplier_simulator.report()["orders"][number]["state"] == "success"
    )

    # Not due yet: the next check leaves it alone.
    with django_capture_on_commit_callbacks(execute=True):
        card_restock_check_task.delay()
    restock.refresh_from_db()
    assert restock.status == RS.PLACED

    # Due: the check hands it to a worker, which fetches and seals the cards.
    CardRestock.objects.filter(pk=restock.pk).update(
        next_poll_at=timezone.now() - dt.timedelta(seconds=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert card_restock_check_task.delay().get() == 0

    restock.refresh_from_db()
    assert restock.status == RS.SUCCEEDED
    assert restock.batch.codes.count() == 2 * THRESHOLD
    assert supplier_simulator.report()["totals"]["orders_created"] == 1


def test_card_restock_advance_task_is_harmless_when_repeated(
    card_sku, sim_supplier, supplier_simulator
):
    stock_codes(card_sku, 1)
    card_restock_check_task.delay()
    restock = CardRestock.objects.get()

    first = card_restock_advance_task.delay(restock_id=restock.pk).get()
    CardRestock.objects.filter(pk=restock.pk).update(
        lease_until=timezone.now() + dt.timedelta(minutes=1)
    )
    second = card_restock_advance_task.delay(restock_id=restock.pk).get()

    assert (first, second) == ("waiting", "busy")
    report = supplier_simulator.report()
    assert report["orders"][restock.customer_order_no]["placements"] == 1
