"""Lost notifies: the gateway was paid, its notify never came; the sweeps ask it.

Against the Alipay stand-in over HTTP, with the notify URL unreachable (the
stand-in's notifies are lost), and against the sandbox's own trades.
"""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import httpx
import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from config.celery import app as celery_app
from orders.gateways import gateway_get
from orders.models import Order, OrderEvent, Payment, PaymentNotify
from orders.services import (
    order_expire_unpaid,
    order_place,
    payment_lost_notify_check,
    payment_lost_notify_sweep,
    payment_notify_handle,
)
from tests.conftest import signed_notify
from tests.factories.accounts import UserFactory
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import available, stock_codes
from tests.factories.orders import sandbox_trade_paid
from tests.orders.gateways.conftest import (  # noqa: F401
    alipay,
    app_key,
    cashier_submit,
)

pytestmark = pytest.mark.django_db
LOST = "http://127.0.0.1:9/payments/notify/alipay/"  # nothing listens: notifies lost
BACK = "http://127.0.0.1:9/back/"
Outcome = PaymentNotify.Outcome


@pytest.fixture
def order(alice, sku):
    return order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=2)


def expiring(order: Order, in_seconds: float) -> Order:
    Order.objects.filter(pk=order.pk).update(
        expires_at=timezone.now() + dt.timedelta(seconds=in_seconds)
    )
    order.refresh_from_db()
    return order


def paid_at_alipay(order: Order) -> str:
    """The shopper paid at Alipay's cashier; the notify goes nowhere."""
    cashier_submit(
        gateway_get("alipay").payment_start(
            order=order, notify_url=LOST, return_url=BACK
        )
    )
    return gateway_get("alipay").query(out_trade_no=order.number).trade_no


def queried(alipay_standin, order: Order) -> int:
    return sum(
        1
        for request in alipay_standin.requests
        if request.get("method") == "alipay.trade.query"
        and order.number in request.get("biz_content", "")
    )


def test_sweep_honours_a_payment_whose_notify_never_came(
    alipay,  # noqa: F811
    order,
):
    trade_no = paid_at_alipay(expiring(order, 90))

    found = payment_lost_notify_sweep()

    assert found == 1
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    payment = Payment.objects.get(order=order)
    assert (payment.gateway, payment.trade_no, payment.amount) == (
        "alipay",
        trade_no,
        Decimal("50.00"),
    )
    notify = PaymentNotify.objects.get()
    assert (notify.gateway, notify.notify_id, notify.outcome) == (
        "alipay",
        f"query:{trade_no}",
        Outcome.PAID,
    )
    assert notify.payload["source"] == "query"
    assert notify.order_id == order.pk


def test_notify_arriving_after_the_sweep_is_a_harmless_duplicate(
    client,
    alipay,  # noqa: F811
    order,
):
    paid_at_alipay(expiring(order, 30))
    payment_lost_notify_sweep()

    response = client.post(
        reverse("orders:payment-notify", args=["alipay"]),
        alipay.notify_fields(order.number),
    )

    assert response.content == b"success"
    assert Payment.objects.count() == 1
    assert sorted(PaymentNotify.objects.values_list("outcome", flat=True)) == [
        Outcome.DUPLICATE,
        Outcome.PAID,
    ]
    assert OrderEvent.objects.filter(order=order, kind="delivered").count() == 1


def test_sweep_looks_only_at_orders_about_to_expire(
    alipay,  # noqa: F811
    alice,
    order,
):
    paid_at_alipay(expiring(order, 10 * 60))
    lapsed = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)
    paid_at_alipay(lapsed)
    expiring(lapsed, -90)  # past the sweep's look-back: the expiry's to ask

    found = payment_lost_notify_sweep()

    assert found == 0
    assert queried(alipay, order) == 1  # only paid_at_alipay's own look
    assert queried(alipay, lapsed) == 1
    assert Order.objects.filter(status=Order.Status.PENDING).count() == 2


def test_sweep_leaves_an_unpaid_order_alone(
    alipay,  # noqa: F811
    order,
):
    httpx.get(
        gateway_get("alipay").payment_start(
            order=expiring(order, 60), notify_url=LOST, return_url=BACK
        ),
        timeout=5,
    )  # opened at the cashier, not paid

    assert payment_lost_notify_sweep() == 0

    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert not PaymentNotify.objects.exists()


def test_expiry_honours_a_payment_found_instead_of_cancelling(
    alipay,  # noqa: F811
    alice,
    order,
    sku,
):
    paid_at_alipay(order)
    expiring(order, -5 * 60)
    unpaid = expiring(
        order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1), -5 * 60
    )

    cancelled = order_expire_unpaid()

    assert cancelled == 1
    order.refresh_from_db()
    unpaid.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    assert unpaid.status == Order.Status.CANCELLED
    assert not OrderEvent.objects.filter(order=order, kind="cancelled").exists()
    assert available(sku) == 1  # 3 - 2 delivered; the unpaid one's code is back


def test_expiry_still_cancels_when_the_gateway_cannot_be_reached(
    alipay,  # noqa: F811
    order,
):
    expiring(order, -60)
    alipay.fail_next_http = 10

    assert order_expire_unpaid() == 1

    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert not PaymentNotify.objects.exists()


def test_query_answering_a_wrong_amount_is_recorded_and_never_pays(
    alipay,  # noqa: F811
    order,
):
    paid_at_alipay(order)
    alipay.trades[order.number].total_amount = Decimal("0.01")

    assert payment_lost_notify_check(out_trade_no=order.number) is False

    notify = PaymentNotify.objects.get()
    assert notify.outcome == Outcome.AMOUNT_MISMATCH
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_beat_runs_the_lost_notify_and_sandbox_sweeps_every_minute():
    schedule = {
        entry["task"]: entry["schedule"]
        for entry in celery_app.conf.beat_schedule.values()
    }

    for task in (
        "orders.tasks.payment_lost_notify_sweep_task",
        "orders.tasks.sandbox_notify_sweep_task",
    ):
        assert schedule[task].remaining_estimate(timezone.now()) <= dt.timedelta(
            minutes=1
        )


# --- The sandbox: a paid trade racing the expiry ------------------------------------


ROUNDS = 8


@pytest.mark.django_db(transaction=True)
def test_paid_trade_racing_expiry_is_delivered_once_and_never_cancelled():
    assert connection.vendor == "postgresql"

    for round_no in range(ROUNDS):
        sku = SkuFactory(code=f"LOST-{round_no}", price=Decimal("30.00"))
        stock_codes(sku, 1)
        order = expiring(
            order_place(user=UserFactory(), sku_code=sku.code, quantity=1), -60
        )
        fields = signed_notify(order, trade_no=f"T-LOST-{round_no}")
        sandbox_trade_paid(order, trade_no=f"T-LOST-{round_no}")
        barrier = threading.Barrier(2)
        results: list[object] = [None, None]

        def run(index, job, barrier=barrier, results=results):
            try:
                barrier.wait(timeout=10)
                results[index] = job()
            except Exception as exc:  # shown by the assertions below
                results[index] = exc
            finally:
                connection.close()

        threads = [
            threading.Thread(
                target=run,
                args=(
                    0,
                    lambda fields=fields: (
                        payment_notify_handle(
                            gateway_name="sandbox", fields=fields
                        ).outcome
                    ),
                ),
            ),
            threading.Thread(target=run, args=(1, order_expire_unpaid)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        outcome, cancelled = results
        assert outcome in (Outcome.PAID, Outcome.DUPLICATE), outcome
        assert cancelled == 0, cancelled
        order.refresh_from_db()
        assert order.status == Order.Status.DELIVERED
        assert Payment.objects.filter(order=order).count() == 1
        assert not OrderEvent.objects.filter(order=order, kind="cancelled").exists()
        # The notify and, unless the notify came first, the expiry's query.
        outcomes = list(
            PaymentNotify.objects.filter(order=order).values_list("outcome", flat=True)
        )
        assert outcomes.count(Outcome.PAID) == 1, outcomes
        assert set(outcomes) <= {Outcome.PAID, Outcome.DUPLICATE}, outcomes
