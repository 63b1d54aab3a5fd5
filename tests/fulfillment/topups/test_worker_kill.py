"""A worker SIGKILLed in the middle of a top-up: the top-up still ends exactly once.

The worker is killed while it waits for the supplier's reply to its placement:
the attempt is `unknown`, the top-up `working` under a lease nobody will release,
the task message never acked. To kill it at exactly that moment, a gate holds
that first placement inside the (in-process) simulator until the test lets it
through; the worker is on the other end of a real HTTP request the whole time.
After the lease runs out the sweep (played by `wait_until`) hands the top-up to
a newly started worker, which asks the supplier about the same number first.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from fulfillment.models import SupplierAttempt, SupplierCallback, TopUp
from orders.models import Order, OrderEvent, OrderLine, Refund
from tests.fulfillment.topups.conftest import (
    assert_bought_once,
    order_delivered,
    order_page,
    pay,
    place_topup,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)

LEASE_SECONDS = 1


class PlacementGate:
    """Holds the simulator's first placement before it is stored, until released.

    With `reorder`, the second placement (a new worker's, same number) lets the
    first one in and waits until it is stored: the dead worker's request lands
    between the new worker's query (not found) and its own placement.
    """

    def __init__(self, state):
        self._place = state.place
        self._lock = threading.Lock()
        self.held = threading.Event()
        self.released = threading.Event()
        self.first_done = threading.Event()
        self.reorder = False
        self.calls = 0
        self.stored = 0  # placements the simulator has finished (stored or replayed)

    def place(self, *args, **kwargs):
        with self._lock:
            self.calls += 1
            call = self.calls
        if call == 1:
            self.held.set()
            self.released.wait(timeout=30)
        elif call == 2 and self.reorder:
            self.released.set()
            self.first_done.wait(timeout=30)
        try:
            return self._place(*args, **kwargs)
        finally:
            with self._lock:
                self.stored += 1
            if call == 1:
                self.first_done.set()


@pytest.fixture
def gate(supplier_simulator, monkeypatch):
    state = supplier_simulator.simulator.state
    gate = PlacementGate(state)
    monkeypatch.setattr(state, "place", gate.place)
    yield gate
    gate.released.set()


@pytest.fixture
def shop(on_redis, settings, client, alice, sim_supplier):
    # The same lease on both sides: a top-up's first sweep is due a lease after payment.
    settings.TOPUP_LEASE_SECONDS = LEASE_SECONDS
    client.force_login(alice)


def pay_and_kill_mid_placement(start_worker, client, alice, gate):
    """Pay; SIGKILL the worker while its placement is held inside the simulator."""
    doomed = start_worker("doomed", TOPUP_LEASE_SECONDS=LEASE_SECONDS)

    order = pay(client, place_topup(alice))
    wait_until(gate.held.is_set, worker=doomed)
    doomed.kill()

    topup = TopUp.objects.get()
    attempt = SupplierAttempt.objects.get()
    assert topup.status == TopUp.Status.WORKING  # held by a dead worker
    assert attempt.status == SupplierAttempt.Status.UNKNOWN
    return order, attempt


def assert_delivered_once(
    client, order, attempt, simulator, *, placements, biz_changes=0
):
    order.refresh_from_db()
    line = order.lines.get()
    topup = TopUp.objects.get()
    assert (order.status, line.status, topup.status) == (
        Order.Status.DELIVERED,
        OrderLine.Status.DELIVERED,
        TopUp.Status.SUCCEEDED,
    )
    delivered_events = OrderEvent.objects.filter(
        order=order, kind=OrderEvent.Kind.LINE_DELIVERED
    )
    assert delivered_events.count() == 1
    assert not Refund.objects.exists()
    assert "已充值" in order_page(client, order)
    (only,) = SupplierAttempt.objects.all()  # the same number throughout
    assert (only.pk, only.status) == (attempt.pk, SupplierAttempt.Status.SUCCEEDED)
    report = simulator.report()
    assert list(report["orders"]) == [attempt.customer_order_no]
    placed = report["orders"][attempt.customer_order_no]
    assert (placed["state"], placed["placements"]) == ("success", placements)
    assert report["totals"]["orders_created"] == 1
    assert Decimal(report["totals"]["spent"]) == Decimal("24.00")
    assert_bought_once(simulator, biz_changes=biz_changes)
    return topup


def test_restarted_worker_finishes_topup_once_when_worker_killed_mid_call(
    start_worker, shop, client, alice, supplier_simulator, gate
):
    supplier_simulator.faults(no_callback=1)
    order, attempt = pay_and_kill_mid_placement(start_worker, client, alice, gate)
    gate.released.set()  # the supplier stores the order; nobody hears the reply
    wait_until(lambda: gate.stored == 1)

    heir = start_worker("heir", TOPUP_LEASE_SECONDS=LEASE_SECONDS)
    wait_until(lambda: order_delivered(order), worker=heir)

    topup = assert_delivered_once(
        client, order, attempt, supplier_simulator, placements=1
    )
    assert not SupplierCallback.objects.exists()
    assert topup.steps == 2  # the dead worker's placement, the heir's query
    (query,) = topup.events.filter(method="order.get")
    assert query.ok


def test_restarted_worker_places_same_number_again_when_killed_call_lands_late(
    start_worker, shop, client, alice, supplier_simulator, gate
):
    order, attempt = pay_and_kill_mid_placement(start_worker, client, alice, gate)

    heir = start_worker("heir", TOPUP_LEASE_SECONDS=LEASE_SECONDS)
    wait_until(lambda: order_delivered(order), worker=heir)
    gate.released.set()  # the dead worker's placement reaches the books at last
    wait_until(lambda: gate.stored == 2)

    # Not found past the grace, so placed again under the same number; the late
    # request then finds that order and is answered with it: one order in all.
    assert_delivered_once(client, order, attempt, supplier_simulator, placements=2)
    only = SupplierAttempt.objects.get()
    assert only.placements == 2
    assert only.topup.events.filter(method="order.get", response__code=3003).exists()


def test_restarted_worker_keeps_number_refused_as_reused_when_its_biz_changed(
    start_worker,
    shop,
    client,
    alice,
    supplier_simulator,
    second_supplier,
    gate,
    live_server,
):
    # A deploy moves the callback URL: the heir's biz differs from the dead
    # worker's, and the dead worker's order lands just before the heir's
    # placement, which the supplier refuses with 3002 (number used, other biz).
    gate.reorder = True
    order, attempt = pay_and_kill_mid_placement(start_worker, client, alice, gate)

    moved = live_server.url.replace("localhost", "127.0.0.1")
    assert moved != live_server.url
    heir = start_worker(
        "heir", TOPUP_LEASE_SECONDS=LEASE_SECONDS, SUPPLIER_CALLBACK_BASE_URL=moved
    )
    wait_until(lambda: order_delivered(order), worker=heir)

    # The number exists: the heir asks for it instead of failing over or refunding.
    assert_delivered_once(
        client, order, attempt, supplier_simulator, placements=2, biz_changes=1
    )
    assert SupplierAttempt.objects.get().error_code == 3002


def test_callback_finishes_topup_whose_worker_was_killed_mid_call(
    start_worker, shop, client, alice, supplier_simulator, gate
):
    order, attempt = pay_and_kill_mid_placement(start_worker, client, alice, gate)

    gate.released.set()  # no worker runs from here on
    wait_until(lambda: order_delivered(order))

    assert_delivered_once(client, order, attempt, supplier_simulator, placements=1)
    # The callback decides although the top-up is still `working` for the dead worker.
    assert SupplierCallback.objects.get().outcome == "applied"
    assert TopUp.objects.get().steps == 1
