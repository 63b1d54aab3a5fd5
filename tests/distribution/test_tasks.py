"""Distribution's periodic tasks: the hourly commission catch-up (distribution/hooks.py)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from config.celery import app as celery_app
from distribution.models import CommissionEntry
from distribution.reconcile import commissions_reconcile
from distribution.tasks import commissions_catch_up_task
from tests.factories.distribution import LineSpec, delivered_order

D = Decimal


def _ledger() -> list[tuple[str, int, str, Decimal, str]]:
    return [
        (e.reseller.user.username, e.level, e.kind, e.amount, e.state)
        for e in CommissionEntry.objects.select_related("reseller__user").order_by("pk")
    ]


@pytest.mark.django_db
def test_commissions_catch_up_task_writes_what_a_failed_hook_left_out(
    alice, dave, rules, sku
):
    # A delivered, credited order whose delivery hook never wrote its earns.
    order = delivered_order(alice, [LineSpec(sku, amount="100.00")], reseller=dave)
    assert not CommissionEntry.objects.exists()

    looked_at = commissions_catch_up_task.delay().get()

    assert looked_at == 1
    assert _ledger() == [
        ("dave", 1, "earn", D("10.00"), "pending"),
        ("carol", 2, "earn", D("5.00"), "pending"),
        ("bob", 3, "earn", D("2.00"), "pending"),
    ]
    line = order.lines.get()
    assert {e.created_at for e in CommissionEntry.objects.all()} == {line.delivered_at}
    assert commissions_reconcile() == []


@pytest.mark.django_db
def test_commissions_catch_up_task_changes_nothing_when_run_again(
    alice, dave, rules, sku
):
    delivered_order(alice, [LineSpec(sku, amount="100.00")], reseller=dave)
    commissions_catch_up_task.delay()
    before = _ledger()

    looked_at = commissions_catch_up_task.delay().get()

    assert looked_at == 0
    assert _ledger() == before


def test_beat_runs_the_commission_catch_up_once_an_hour():
    [entry] = [
        e
        for e in celery_app.conf.beat_schedule.values()
        if e["task"] == "distribution.tasks.commissions_catch_up_task"
    ]
    schedule = entry["schedule"]
    now = timezone.now()

    # Once in every hour of the day, at one minute of it.
    assert len(schedule.minute) == 1
    assert len(schedule.hour) == 24
    assert schedule.remaining_estimate(now) <= dt.timedelta(hours=1)
