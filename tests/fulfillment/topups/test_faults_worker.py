"""Every fault in the supplier protocol's list, with a real Celery worker on Redis.

The shopper pays in this process; a `celery worker` subprocess takes every step
of the top-up against the simulator over HTTP; the simulator calls back to the
live server; `wait_until` sweeps as beat would (conftest). Each test checks the
line's and the order's end state, the order page alice sees, the refund, and,
from the suppliers' own books, that nothing was placed twice under two numbers,
nor under one number with two biz, nor bought twice. Corrupt card payloads
concern card restock, not top-ups, and are tested there. A dropped reply is
tested in the simulator's "close" mode only: "hang" ends in the adapter's fixed
10 s read timeout, the same `unknown` outcome at ten times the cost.
"""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from fulfillment.models import SupplierAttempt, SupplierCallback, TopUp, TopUpEvent
from fulfillment.services import TopUpActionError, topup_fail_over, topup_retry_now
from orders.models import Order, OrderLine, Refund
from tests.fulfillment.topups.conftest import (
    assert_bought_once,
    order_delivered,
    order_page,
    pay,
    place_topup,
    refund_settled,
    wait_until,
)

pytestmark = pytest.mark.django_db(transaction=True)

PRICE = Decimal("28.00")
NO_SUPPLIER = "充值渠道暂时无法完成这笔充值"
BAD_ACCOUNT = "充值账号无效"
OUT_OF_FUNDS = {"balance": "10.00"}  # less than the 24.00 the order costs
OUT_OF_STOCK = {"stock": {"P-TX-VIP-MONTH": 0}}


@pytest.fixture
def shop(topup_worker, on_redis, client, alice, sim_supplier):
    """Alice logged in, the `sim` supplier mapped, the worker running."""
    client.force_login(alice)
    return topup_worker


def buy(client, alice):
    return pay(client, place_topup(alice))


def delivered(client, order, worker, *simulators):
    """Wait for the top-up to be delivered, then check every side of it."""
    wait_until(lambda: order_delivered(order), worker=worker)
    order.refresh_from_db()
    line = order.lines.get()
    assert (order.status, line.status) == (
        Order.Status.DELIVERED,
        OrderLine.Status.DELIVERED,
    )
    assert TopUp.objects.get(order_line=line).status == TopUp.Status.SUCCEEDED
    assert line.refunded_amount == 0
    assert not Refund.objects.filter(order=order).exists()
    page = order_page(client, order)
    assert "已充值" in page
    assert "已退款" not in page
    assert_bought_once(*simulators)
    return line


def refunded(client, order, worker, reason, *simulators):
    """Wait for the refund to go through, then check every side of it."""
    wait_until(lambda: refund_settled(order), worker=worker)
    order.refresh_from_db()
    line = order.lines.get()
    topup = TopUp.objects.get(order_line=line)
    assert (order.status, line.status, topup.status) == (
        Order.Status.REFUNDED,
        OrderLine.Status.REFUNDED,
        TopUp.Status.FAILED,
    )
    assert reason in line.status_reason
    refund = Refund.objects.get(order=order)
    assert (refund.amount, refund.status) == (PRICE, Refund.Status.SUCCEEDED)
    assert order.refunded_amount == line.refunded_amount == PRICE
    page = order_page(client, order)
    assert "已退款" in page
    assert "已充值" not in page
    assert f"已退回 ¥{PRICE}" in page
    assert reason in page
    assert_bought_once(*simulators)
    return topup


def callbacks_logged(simulator, n):
    """The simulator's callback log once it holds `n` attempts (else None)."""
    log = simulator.callback_log()
    return log if len(log) >= n else None


def app_enable(simulator, enabled):
    """The supplier switches our app key off or on (control API)."""
    reply = httpx.post(
        f"{simulator.control_url}/apps",
        json={"app_key": simulator.app_key, "enabled": enabled},
        timeout=5,
    )
    reply.raise_for_status()


def sim_order(simulator, attempt):
    return simulator.report()["orders"][attempt.customer_order_no]


def test_topup_delivered_once_when_supplier_is_slow(
    shop, client, alice, supplier_simulator
):
    supplier_simulator.faults(latency_ms=600, latency_jitter_ms=400)

    order = buy(client, alice)

    delivered(client, order, shop, supplier_simulator)
    attempt = SupplierAttempt.objects.get()
    assert sim_order(supplier_simulator, attempt)["placements"] == 1
    assert TopUpEvent.objects.get(method="order.direct.add").latency_ms >= 600


def test_topup_delivered_once_when_reply_dropped_after_accept(
    shop, client, alice, supplier_simulator
):
    supplier_simulator.faults(drop_reply_after_accept=1, drop_mode="close")

    order = buy(client, alice)

    delivered(client, order, shop, supplier_simulator)
    attempt = SupplierAttempt.objects.get()
    # Found (callback or query) under the same number: never placed again.
    assert sim_order(supplier_simulator, attempt)["placements"] == 1
    placement = TopUpEvent.objects.get(method="order.direct.add")
    assert "transport" in placement.note
    assert not placement.ok


def test_topup_placed_again_under_same_number_when_500_before_store(
    shop, client, alice, supplier_simulator
):
    supplier_simulator.faults(http_500_before_store=1)

    order = buy(client, alice)

    delivered(client, order, shop, supplier_simulator)
    attempt = SupplierAttempt.objects.get()
    # Queried first (3003 after the grace), then placed again with the same number.
    assert sim_order(supplier_simulator, attempt)["placements"] == 2
    assert attempt.placements == 2
    assert TopUpEvent.objects.filter(method="order.get", response__code=3003).exists()


def test_topup_found_by_query_when_500_after_store(
    shop, client, alice, supplier_simulator
):
    supplier_simulator.faults(http_500_after_store=1, no_callback=1)

    order = buy(client, alice)

    delivered(client, order, shop, supplier_simulator)
    attempt = SupplierAttempt.objects.get()
    assert sim_order(supplier_simulator, attempt)["placements"] == 1
    assert TopUpEvent.objects.get(method="order.direct.add").http_status == 500


def test_topup_waits_out_a_429_burst_under_same_number(
    shop, client, alice, supplier_simulator
):
    supplier_simulator.faults(rate_limit=2, retry_after=1)

    order = buy(client, alice)

    delivered(client, order, shop, supplier_simulator)
    attempt = SupplierAttempt.objects.get()
    assert sim_order(supplier_simulator, attempt)["placements"] == 3
    assert list(
        TopUpEvent.objects.filter(method="order.direct.add")
        .order_by("id")
        .values_list("http_status", flat=True)
    ) == [429, 429, 200]


def placed(client, alice):
    """Pay and wait until the supplier has accepted the order (no callback armed)."""
    order = buy(client, alice)
    wait_until(lambda: SupplierAttempt.objects.filter(status="placed").exists())
    return order


def query_now(operator):
    """An operator has the top-up queried at once (admin "retry now")."""
    assert topup_retry_now(topup_id=TopUp.objects.get().pk, actor=operator)


def test_topup_keeps_its_placed_number_when_queries_are_rate_limited(
    shop, client, alice, supplier_simulator, second_simulator, second_supplier, operator
):
    supplier_simulator.faults(no_callback=1)
    order = placed(client, alice)
    supplier_simulator.faults(rate_limit=1, method="order.get", retry_after=1)

    query_now(operator)
    wait_until(lambda: TopUpEvent.objects.filter(http_status=429).exists(), sweep=False)

    # A refused query says nothing about the order: it is still placed, and
    # abandoning it for the next supplier would buy the top-up twice.
    assert SupplierAttempt.objects.get().status == "placed"
    with pytest.raises(TopUpActionError, match="可能已受理"):
        topup_fail_over(topup_id=TopUp.objects.get().pk, actor=operator)
    delivered(client, order, shop, supplier_simulator, second_simulator)
    attempt = SupplierAttempt.objects.get()
    assert sim_order(supplier_simulator, attempt)["placements"] == 1


def test_topup_does_not_fail_over_when_supplier_refuses_a_query(
    shop, client, alice, supplier_simulator, second_simulator, second_supplier, operator
):
    supplier_simulator.faults(no_callback=1)
    order = placed(client, alice)
    app_enable(supplier_simulator, False)  # 1004 on every request, queries too

    query_now(operator)
    wait_until(lambda: TopUpEvent.objects.filter(response__code=1004).exists())
    app_enable(supplier_simulator, True)

    delivered(client, order, shop, supplier_simulator, second_simulator)
    assert SupplierAttempt.objects.get().status == "succeeded"
    assert second_simulator.report()["totals"]["placements"] == 0


def test_topup_shows_in_progress_while_supplier_is_processing(
    shop, client, alice, supplier_simulator
):
    supplier_simulator.faults(processing_seconds=3)

    order = buy(client, alice)
    wait_until(
        lambda: SupplierAttempt.objects.filter(status="placed").exists(), worker=shop
    )

    page = order_page(client, order)
    assert "充值中" in page
    assert OrderLine.objects.get().status == OrderLine.Status.DELIVERING
    delivered(client, order, shop, supplier_simulator)


def test_topup_fails_over_to_second_supplier_when_first_fails_after_processing(
    shop, client, alice, supplier_simulator, second_simulator, second_supplier
):
    supplier_simulator.faults(fail_next=1, fail_reason="运营商维护")

    order = buy(client, alice)

    delivered(client, order, shop, supplier_simulator, second_simulator)
    first, second = SupplierAttempt.objects.order_by("id")
    assert (first.status, first.last_error) == ("failed", "运营商维护")
    assert second.status == "succeeded"
    assert first.customer_order_no != second.customer_order_no
    assert sim_order(supplier_simulator, first)["state"] == "failed"
    assert sim_order(second_simulator, second)["state"] == "success"


def test_topup_refunded_when_only_supplier_fails_after_processing(
    shop, client, alice, supplier_simulator
):
    supplier_simulator.faults(fail_next=1, fail_reason="运营商维护")

    order = buy(client, alice)

    topup = refunded(client, order, shop, NO_SUPPLIER, supplier_simulator)
    assert topup.fail_code == "no_supplier"
    assert SupplierAttempt.objects.get().status == "failed"


def test_topup_applied_once_when_callback_arrives_twice(
    shop, client, alice, supplier_simulator
):
    supplier_simulator.faults(duplicate_callbacks=1)

    order = buy(client, alice)

    delivered(client, order, shop, supplier_simulator)
    supplier_simulator.wait_for(
        lambda: [
            c for c in supplier_simulator.callback_log() if c["kind"] == "duplicate"
        ]
    )
    wait_until(lambda: SupplierCallback.objects.count() == 2)
    assert sorted(SupplierCallback.objects.values_list("outcome", flat=True)) == [
        "applied",
        "duplicate",
    ]
    assert all(c["answered_success"] for c in supplier_simulator.callback_log())
    assert OrderLine.objects.get().status == OrderLine.Status.DELIVERED


def test_topup_stays_delivered_when_stale_callback_arrives_after_terminal(
    shop, client, alice, supplier_simulator
):
    supplier_simulator.faults(out_of_order_callbacks=1)

    order = buy(client, alice)

    delivered(client, order, shop, supplier_simulator)
    supplier_simulator.wait_for(
        lambda: [c for c in supplier_simulator.callback_log() if c["kind"] == "stale"]
    )
    wait_until(lambda: SupplierCallback.objects.filter(state="processing").exists())
    assert TopUp.objects.get().status == TopUp.Status.SUCCEEDED
    assert SupplierAttempt.objects.get().status == "succeeded"
    delivered(client, order, shop, supplier_simulator)


def test_topup_ignores_badly_signed_callback_and_applies_the_retry(
    shop, client, alice, supplier_simulator
):
    supplier_simulator.faults(bad_callback_signature=1)

    order = buy(client, alice)

    delivered(client, order, shop, supplier_simulator)
    # The simulator logs an attempt once our answer is back: wait for the retry's.
    first, retry = supplier_simulator.wait_for(
        lambda: callbacks_logged(supplier_simulator, 2)
    )
    assert (first["bad_signature"], first["http_status"]) == (True, 400)
    assert not first["answered_success"]
    assert (retry["bad_signature"], retry["answered_success"]) == (False, True)
    assert sorted(SupplierCallback.objects.values_list("outcome", flat=True)) == [
        "applied",
        "bad_signature",
    ]


def test_topup_found_by_polling_when_no_callback_comes(
    shop, client, alice, supplier_simulator
):
    supplier_simulator.faults(no_callback=1)

    order = buy(client, alice)

    delivered(client, order, shop, supplier_simulator)
    assert not SupplierCallback.objects.exists()
    assert supplier_simulator.callback_log() == []
    assert TopUpEvent.objects.filter(method="order.get", ok=True).exists()


@pytest.mark.parametrize(
    ("fault", "code"),
    [(OUT_OF_FUNDS, 3001), (OUT_OF_STOCK, 2003)],
    ids=["3001", "2003"],
)
def test_topup_fails_over_when_first_supplier_refuses(
    shop,
    client,
    alice,
    supplier_simulator,
    second_simulator,
    second_supplier,
    fault,
    code,
):
    supplier_simulator.faults(**fault)

    order = buy(client, alice)

    delivered(client, order, shop, supplier_simulator, second_simulator)
    first, second = SupplierAttempt.objects.order_by("id")
    assert (first.status, first.error_code) == ("rejected", code)
    assert supplier_simulator.report()["unplaced"] == {first.customer_order_no: 1}
    assert second.status == "succeeded"


@pytest.mark.parametrize(
    ("fault", "code"),
    [(OUT_OF_FUNDS, 3001), (OUT_OF_STOCK, 2003)],
    ids=["3001", "2003"],
)
def test_topup_refunded_when_only_supplier_refuses(
    shop, client, alice, supplier_simulator, fault, code
):
    supplier_simulator.faults(**fault)

    order = buy(client, alice)

    refunded(client, order, shop, NO_SUPPLIER, supplier_simulator)
    attempt = SupplierAttempt.objects.get()
    assert (attempt.status, attempt.error_code) == ("rejected", code)
    assert supplier_simulator.report()["totals"]["orders_created"] == 0


def test_topup_refunded_with_account_words_and_no_fail_over_when_account_invalid(
    shop, client, alice, supplier_simulator, second_simulator, second_supplier
):
    supplier_simulator.invalidate_accounts("123456789")

    order = buy(client, alice)

    topup = refunded(
        client, order, shop, BAD_ACCOUNT, supplier_simulator, second_simulator
    )
    assert topup.fail_code == "2004"
    assert "请核对账号后重新下单" in order_page(client, order)
    # The shopper's input is wrong everywhere: no second supplier is asked.
    assert SupplierAttempt.objects.get().error_code == 2004
    assert second_simulator.report()["totals"]["placements"] == 0
