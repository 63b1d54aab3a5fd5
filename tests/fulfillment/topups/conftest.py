"""A top-up shop on the simulator: a QQ top-up SKU mapped to the simulator's product.

Also the live setup (a real Celery worker subprocess on Redis, callbacks over
HTTP to the live server) used by test_faults_worker.py and test_worker_kill.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.db.models import Sum
from django.urls import reverse

from catalog.models import Platform, Sku
from config.celery import app as celery_app
from config.lib.http import json_clients_close
from fulfillment.models import SupplierAttempt, TopUp, TopUpEvent
from fulfillment.services import topup_sweep
from fulfillment.simulator.server import Simulator
from orders.models import Order, OrderLine, Refund
from orders.services import order_place
from tests.conftest import signed_notify
from tests.factories.catalog import PlatformFactory, ProductFactory, SkuFactory
from tests.factories.fulfillment import (
    mapping_make,
    supplier_for_simulator,
    supplier_ready,
)
from tests.factories.orders import sandbox_trade_paid
from tests.fixtures.supplier_simulator import TIME_SCALE, SupplierSimulatorHandle
from tests.fulfillment.topups.worker import WorkerProcess, database_url

QQ = "123456789"
NOTIFY_URL = reverse("orders:payment-notify", args=["sandbox"])


@pytest.fixture(autouse=True)
def _fresh_json_clients() -> Iterator[None]:
    yield
    json_clients_close()


@pytest.fixture
def topup_sku(db, settings):
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True
    # The simulator answers at once: a number it does not know right after an
    # unknown placement was never created, so placing it again is safe.
    settings.TOPUP_PLACEMENT_GRACE_SECONDS = 0
    platform = PlatformFactory(
        name="腾讯视频", slug="tencent", account_rule=Platform.AccountRule.QQ
    )
    return SkuFactory(
        product=ProductFactory(platform=platform, name="腾讯视频 VIP 直充"),
        code="TX-DIRECT",
        name="月卡直充",
        delivery=Sku.Delivery.DIRECT_TOPUP,
        price=Decimal("28.00"),
        face_value=Decimal("30.00"),
    )


@pytest.fixture
def sim_supplier(supplier_simulator, topup_sku):
    supplier = supplier_for_simulator(supplier_simulator, name="sim")
    supplier_ready(mapping_make(topup_sku, supplier, "P-TX-VIP-MONTH", cost="24.00"))
    return supplier


def pay(client, order, trade_no="T1"):
    """The sandbox gateway's notify for a paid trade (its own side recorded too)."""
    sandbox_trade_paid(order, trade_no=trade_no)
    response = client.post(NOTIFY_URL, signed_notify(order, trade_no=trade_no))
    assert response.content == b"success"
    return Order.objects.get(pk=order.pk)


def place_topup(user, quantity=1, account=QQ):
    return order_place(
        user=user, sku_code="TX-DIRECT", quantity=quantity, recharge_account=account
    )


# --- A real worker on Redis, callbacks over HTTP (test_faults_worker, test_worker_kill) ---
#
# The web side is this test process: payments and callbacks reach it through
# pytest-django's live server, and it publishes tasks to Redis (not eager). The
# engine's steps run in a `celery worker` subprocess (worker.py) on the same test
# database. There is no beat: `wait_until` calls `topup_sweep()` every half
# second, as beat would every 5 s, so polling and lease recovery stay
# deterministic and fast.

UNIT_COST = Decimal("24.00")
SWEEP_EVERY = 0.5  # seconds; beat runs the sweep every 5 s in production
WAIT_SECONDS = 20.0


# The worker's settings (environment, read by config/settings.py) and the test
# process's: the same engine timings on both sides of the broker.
ENGINE_TIMINGS: dict[str, Any] = {
    # Longer than any step here (the longest is a 10 s read timeout).
    "TOPUP_LEASE_SECONDS": 30,
    # The simulator stores an order as it answers: after 1 s, "not found" means
    # never created, and placing the same number again is safe.
    "TOPUP_PLACEMENT_GRACE_SECONDS": 1,
}


def worker_env(live_server_url: str, db_url: str, **timings: Any) -> dict[str, str]:
    """The worker's environment: the test database, callbacks to the live server."""
    return {
        "DATABASE_URL": db_url,
        "CONN_MAX_AGE": "0",
        "SUPPLIER_CALLBACK_BASE_URL": live_server_url,
        "HTTP_ALLOW_PRIVATE_ADDRESSES": "true",
        "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        **{name: str(value) for name, value in {**ENGINE_TIMINGS, **timings}.items()},
    }


@pytest.fixture(scope="module")
def worker_log_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("workers")


class WorkerLauncher:
    """Starts `celery worker` subprocesses on the test database; stops them all."""

    def __init__(self, live_server_url: str, log_dir: Path) -> None:
        self.live_server_url = live_server_url
        self.log_dir = log_dir
        self.db_url = database_url(connection.settings_dict)
        self.started: list[WorkerProcess] = []

    def __call__(self, name: str = "worker", **timings: Any) -> WorkerProcess:
        celery_app.control.purge()  # nothing left over from an earlier test
        worker = WorkerProcess(
            env=worker_env(self.live_server_url, self.db_url, **timings),
            log_dir=self.log_dir,
            name=name,
        )
        self.started.append(worker)
        return worker.start()

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()


@pytest.fixture
def start_worker(django_db_setup, live_server, worker_log_dir):
    """Workers for one test (test_worker_kill): none outlives it to take the next's tasks."""
    launcher = WorkerLauncher(live_server.url, worker_log_dir)
    yield launcher
    launcher.stop_all()


@pytest.fixture(scope="module")
def topup_worker(django_db_setup, live_server, worker_log_dir):
    """One worker for a whole module (starting one takes about two seconds)."""
    launcher = WorkerLauncher(live_server.url, worker_log_dir)
    yield launcher("faults")
    launcher.stop_all()


@pytest.fixture
def on_redis(live_server, settings):
    """Tasks go to Redis (not eager), callbacks reach the live server."""
    settings.SUPPLIER_CALLBACK_BASE_URL = live_server.url
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True
    for name, value in ENGINE_TIMINGS.items():
        setattr(settings, name, value)
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = True


@pytest.fixture
def second_simulator() -> Iterator[SupplierSimulatorHandle]:
    """Another supplier, a separate simulator with its own books."""
    simulator = Simulator(
        host="127.0.0.1",
        port=0,
        app_key="kaquan-second",
        secret="second-supplier-secret",
        time_scale=TIME_SCALE,
        balance=Decimal("10000.00"),
        callback_timeout=2.0,
    ).start()
    try:
        yield SupplierSimulatorHandle(simulator)
    finally:
        simulator.stop()


@pytest.fixture
def second_supplier(second_simulator, sim_supplier, topup_sku):
    """`sim2`, tried after `sim` (mapping priority), same product and cost."""
    supplier = supplier_for_simulator(second_simulator, name="sim2")
    mapping_make(topup_sku, supplier, "P-TX-VIP-MONTH", cost=UNIT_COST, priority=200)
    return supplier


def wait_until(
    predicate,
    *,
    worker: WorkerProcess | None = None,
    timeout=WAIT_SECONDS,
    sweep=True,
):
    """Poll the database (every 50 ms) until `predicate()` holds, sweeping as beat would.

    `sweep=False` when a step was just queued directly and the test looks at the
    state it leaves: a sweep in the moment before a worker takes that message
    queues a copy, and a copy takes its step at once, whatever the schedule.
    Fails the test with the top-ups' state and the worker's log when time runs out.
    """
    deadline = time.monotonic() + timeout
    next_sweep = 0.0
    while True:
        value = predicate()
        if value:
            return value
        now = time.monotonic()
        if now > deadline:
            pytest.fail(
                f"not within {timeout} s; top-ups: {topups_describe()}\n"
                + (worker.log_tail() if worker else "")
            )
        if sweep and now >= next_sweep:
            topup_sweep()
            next_sweep = now + SWEEP_EVERY
        time.sleep(0.05)


def topups_describe() -> list[dict[str, Any]]:
    return [
        {
            "status": t.status,
            "attempts": list(
                t.attempts.values_list("customer_order_no", "status", "last_error")
            ),
            "events": list(t.events.values_list("kind", "method", "note")),
        }
        for t in TopUp.objects.all()
    ]


def refund_settled(order: Order) -> bool:
    return Refund.objects.filter(order=order, status=Refund.Status.SUCCEEDED).exists()


def order_delivered(order: Order) -> bool:
    return Order.objects.get(pk=order.pk).status == Order.Status.DELIVERED


def order_page(client, order: Order) -> str:
    """The order page as its shopper sees it (the client is logged in as alice)."""
    response = client.get(reverse("orders:order-detail", args=[order.number]))
    assert response.status_code == 200
    return response.content.decode()


def assert_bought_once(
    *simulators: SupplierSimulatorHandle, biz_changes: int = 0
) -> None:
    """From the suppliers' own books: every number is one order at one supplier,
    placed with the biz we recorded (never a second biz, 3002, unless the test
    changes our callback URL on purpose), and what was bought is exactly what
    the shoppers got."""
    reports = [s.report() for s in simulators]
    numbers = [number for report in reports for number in report["orders"]]
    assert len(numbers) == len(set(numbers)), "a number became orders at two suppliers"
    attempts = {
        a.customer_order_no: a
        for a in SupplierAttempt.objects.select_related("topup", "supplier")
    }
    for simulator, report in zip(simulators, reports, strict=True):
        for number, placed in report["orders"].items():
            attempt = attempts[number]
            assert attempt.supplier.base_url == simulator.base_url
            assert (
                placed["product_id"],
                placed["charge_account"],
                placed["buy_num"],
            ) == (
                attempt.product_id,
                attempt.topup.recharge_account,
                attempt.topup.quantity,
            )
        for number in report["unplaced"]:  # refused, or never stored: ours, here
            assert attempts[number].supplier.base_url == simulator.base_url
    assert TopUpEvent.objects.filter(response__code=3002).count() == biz_changes
    bought = sum(
        placed["buy_num"]
        for report in reports
        for placed in report["orders"].values()
        if placed["state"] == "success"
    )
    delivered = (
        OrderLine.objects.filter(
            delivery=Sku.Delivery.DIRECT_TOPUP, status=OrderLine.Status.DELIVERED
        ).aggregate(n=Sum("quantity"))["n"]
        or 0
    )
    assert bought == delivered
    assert sum(Decimal(r["totals"]["spent"]) for r in reports) == UNIT_COST * delivered
    assert (
        SupplierAttempt.objects.filter(status=SupplierAttempt.Status.SUCCEEDED).count()
        == delivered
    )
