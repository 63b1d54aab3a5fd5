"""Threaded checkouts on PostgreSQL: SKIP LOCKED neither deadlocks nor double-sells."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection

from fulfillment.models import CardCode
from fulfillment.services import OutOfStockError
from orders.models import Order
from orders.services import order_expire_unpaid, order_place
from tests.factories.accounts import UserFactory
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes

BUYERS = 24
CODES = 10


def _rush(users, sku_code, quantity=1):
    """Every buyer checks out at once, each thread on its own connection."""
    barrier = threading.Barrier(len(users))
    results: list[str] = []
    lock = threading.Lock()

    def buy(user):
        try:
            barrier.wait()
            order_place(user=user, sku_code=sku_code, quantity=quantity)
            outcome = "ok"
        except OutOfStockError:
            outcome = "sold_out"
        except Exception as exc:  # anything else is a bug the test must show
            outcome = f"error: {exc!r}"
        finally:
            connection.close()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=buy, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return Counter(results)


@pytest.mark.django_db(transaction=True)
def test_order_place_sells_each_code_once_when_buyers_outnumber_codes():
    assert connection.vendor == "postgresql"
    sku = SkuFactory(code="RUSH-1")
    stock_codes(sku, CODES)
    users = [UserFactory() for _ in range(BUYERS)]

    outcomes = _rush(users, "RUSH-1")

    assert outcomes == Counter({"ok": CODES, "sold_out": BUYERS - CODES})
    assert Order.objects.count() == CODES
    taken = list(
        CardCode.objects.filter(status="reserved").values_list(
            "order_line_id", flat=True
        )
    )
    assert len(taken) == CODES
    assert len(set(taken)) == CODES  # one code per order line, none shared
    assert not CardCode.objects.filter(status="available").exists()


@pytest.mark.django_db(transaction=True)
def test_order_place_multi_unit_orders_never_split_or_oversell():
    sku = SkuFactory(code="RUSH-2")
    stock_codes(sku, 7)
    users = [UserFactory() for _ in range(12)]

    outcomes = _rush(users, "RUSH-2", quantity=2)

    assert outcomes["ok"] == 3
    assert outcomes["sold_out"] == 9
    per_line = Counter(
        CardCode.objects.filter(status="reserved").values_list(
            "order_line_id", flat=True
        )
    )
    assert sorted(per_line.values()) == [2, 2, 2]
    assert CardCode.objects.filter(status="available").count() == 1


@pytest.mark.django_db(transaction=True)
def test_expiry_and_checkout_running_together_never_lose_or_double_a_code():
    sku = SkuFactory(code="RUSH-3")
    stock_codes(sku, CODES)
    early = [UserFactory() for _ in range(CODES)]
    for user in early:
        order_place(user=user, sku_code="RUSH-3", quantity=1)
    Order.objects.update(expires_at="2000-01-01T00:00:00Z")
    late = [UserFactory() for _ in range(BUYERS)]

    expirer = threading.Thread(
        target=lambda: (order_expire_unpaid(), connection.close())
    )
    expirer.start()
    outcomes = _rush(late, "RUSH-3")
    expirer.join(timeout=60)
    order_expire_unpaid()

    assert not any(k.startswith("error") for k in outcomes)
    statuses = Counter(CardCode.objects.values_list("status", flat=True))
    assert statuses["reserved"] == outcomes["ok"]
    assert statuses["reserved"] + statuses["available"] == CODES
    assert Order.objects.filter(status="pending").count() == outcomes["ok"]
