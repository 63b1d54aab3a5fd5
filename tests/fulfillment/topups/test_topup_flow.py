"""The top-up engine in-process (eager tasks) against the simulator over HTTP."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from fulfillment.models import SupplierAttempt, TopUp
from fulfillment.services import topup_advance
from orders.models import Order, OrderLine, Refund
from tests.fulfillment.topups.conftest import pay, place_topup

pytestmark = pytest.mark.django_db


def advance_until_done(topup, *, tries=40):
    for _ in range(tries):
        topup.refresh_from_db()
        if not topup.is_open:
            return topup
        TopUp.objects.filter(pk=topup.pk).update(lease_until=None)
        topup_advance(topup_id=topup.pk)
        time.sleep(0.05)
    topup.refresh_from_db()
    return topup


def test_paid_topup_is_placed_once_and_delivered(
    client, alice, sim_supplier, supplier_simulator, django_capture_on_commit_callbacks
):
    order = place_topup(alice)
    with django_capture_on_commit_callbacks(execute=True):
        order = pay(client, order)

    topup = advance_until_done(TopUp.objects.get())

    assert topup.status == TopUp.Status.SUCCEEDED
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    assert order.lines.get().status == OrderLine.Status.DELIVERED
    report = supplier_simulator.report()
    (number,) = report["orders"]
    assert report["orders"][number]["charge_account"] == "123456789"
    assert report["totals"]["orders_created"] == 1


def test_bad_account_is_refunded_with_the_reason(
    client, alice, sim_supplier, supplier_simulator, django_capture_on_commit_callbacks
):
    supplier_simulator.invalidate_accounts("123456789")
    order = place_topup(alice)
    with django_capture_on_commit_callbacks(execute=True):
        order = pay(client, order)
        topup = advance_until_done(TopUp.objects.get())

    assert topup.status == TopUp.Status.FAILED
    order.refresh_from_db()
    line = order.lines.get()
    assert order.status == Order.Status.REFUNDED
    assert line.status == OrderLine.Status.REFUNDED
    assert "充值账号无效" in line.status_reason
    assert order.refunded_amount == Decimal("28.00")
    assert Refund.objects.get().status == Refund.Status.SUCCEEDED
    assert supplier_simulator.report()["totals"]["orders_created"] == 0


def test_busy_supplier_is_queried_and_retried_under_the_same_number(
    client, alice, sim_supplier, supplier_simulator, django_capture_on_commit_callbacks
):
    supplier_simulator.faults(busy=2)
    order = place_topup(alice)
    with django_capture_on_commit_callbacks(execute=True):
        pay(client, order)
        topup = advance_until_done(TopUp.objects.get())

    assert topup.status == TopUp.Status.SUCCEEDED
    assert SupplierAttempt.objects.count() == 1
    report = supplier_simulator.report()
    assert report["totals"]["orders_created"] == 1
    (entry,) = report["orders"].values()
    assert entry["placements"] >= 1
