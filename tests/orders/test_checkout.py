from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from fulfillment.models import CardCode
from fulfillment.services import OutOfStockError
from orders.models import Order, OrderEvent
from orders.pricing import QuoteError
from orders.services import (
    SkuUnavailableError,
    TooManyUnpaidOrdersError,
    order_cancel,
    order_expire_unpaid,
    order_place,
)
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import available, stock_codes

pytestmark = pytest.mark.django_db


def test_order_place_reserves_one_code_per_unit(alice):
    sku = SkuFactory(code="TX-VIP-MONTH")
    stock_codes(sku, 5)

    order = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=2)

    assert order.status == Order.Status.PENDING
    assert order.total_amount == sku.price * 2
    line = order.lines.get()
    assert line.codes.filter(status=CardCode.Status.RESERVED).count() == 2
    assert available(sku) == 3
    assert order.events.filter(kind=OrderEvent.Kind.PLACED).exists()
    assert order.number.startswith("KQ")
    assert len(order.number) == 20


def test_order_place_issues_first_expiring_codes_first(alice):
    sku = SkuFactory(code="TX-VIP-MONTH")
    now = timezone.now()
    stock_codes(sku, ["LATE00000001"], expires_at=now + dt.timedelta(days=90))
    stock_codes(sku, ["NEVER0000001"])
    stock_codes(sku, ["SOON00000001"], expires_at=now + dt.timedelta(days=3))

    order = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)

    assert order.lines.get().codes.get().hint == "SO****01"


def test_order_place_never_sells_an_expired_code(alice):
    sku = SkuFactory(code="TX-VIP-MONTH")
    stock_codes(sku, 1, expires_at=timezone.now() + dt.timedelta(minutes=5))

    with pytest.raises(OutOfStockError):
        order_place(
            user=alice,
            sku_code="TX-VIP-MONTH",
            quantity=1,
            now=timezone.now() + dt.timedelta(minutes=10),
        )


def test_order_place_skips_codes_expiring_before_payment_could_land(alice, settings):
    sku = SkuFactory(code="TX-VIP-MONTH")
    now = timezone.now()
    timeout = dt.timedelta(minutes=settings.ORDER_PAYMENT_TIMEOUT_MINUTES)
    stock_codes(
        sku, ["EXPIRESSOON1"], expires_at=now + timeout - dt.timedelta(minutes=1)
    )
    stock_codes(
        sku, ["LASTSLONGER1"], expires_at=now + timeout + dt.timedelta(minutes=5)
    )

    order = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1, now=now)

    assert order.lines.get().codes.get().hint == "LA****R1"
    with pytest.raises(OutOfStockError):
        order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1, now=now)


def test_order_place_creates_nothing_when_stock_short(alice):
    sku = SkuFactory(code="TX-VIP-MONTH")
    stock_codes(sku, 1)

    with pytest.raises(OutOfStockError) as exc:
        order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=2)

    assert "只剩 1 件" in exc.value.message
    assert not Order.objects.exists()
    assert available(sku) == 1


@pytest.mark.parametrize(
    "sku_kwargs",
    [
        {"is_active": False},
        {"sale_starts_at": dt.datetime(2999, 1, 1, tzinfo=dt.UTC)},
        {
            "sale_ends_at": dt.datetime(2000, 1, 2, tzinfo=dt.UTC),
            "sale_starts_at": dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
        },
        {"product__is_active": False},
        {"product__platform__is_active": False},
    ],
    ids=[
        "inactive",
        "not-started",
        "ended",
        "product-off",
        "platform-off",
    ],
)
def test_order_place_refuses_sku_not_on_sale(alice, sku_kwargs):
    SkuFactory(code="TX-VIP-MONTH", **sku_kwargs)

    with pytest.raises(SkuUnavailableError):
        order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)

    assert not Order.objects.exists()


@pytest.mark.parametrize("quantity", [0, 1, 4])
def test_order_place_refuses_quantity_outside_limits(alice, quantity):
    sku = SkuFactory(code="TX-VIP-MONTH", min_per_order=2, max_per_order=3)
    stock_codes(sku, 10)

    with pytest.raises(QuoteError):
        order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=quantity)


def test_order_place_returns_same_order_for_same_client_token(alice):
    sku = SkuFactory(code="TX-VIP-MONTH")
    stock_codes(sku, 5)

    first = order_place(
        user=alice, sku_code="TX-VIP-MONTH", quantity=1, client_token="tok"
    )
    second = order_place(
        user=alice, sku_code="TX-VIP-MONTH", quantity=1, client_token="tok"
    )

    assert first == second
    assert available(sku) == 4


def test_order_place_limits_unpaid_orders_per_shopper(alice, settings):
    settings.ORDER_MAX_UNPAID_PER_USER = 2
    sku = SkuFactory(code="TX-VIP-MONTH")
    stock_codes(sku, 10)
    order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)
    order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)

    with pytest.raises(TooManyUnpaidOrdersError):
        order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)

    assert available(sku) == 8


def test_order_place_allows_new_order_once_unpaid_one_is_past_deadline(alice, settings):
    settings.ORDER_MAX_UNPAID_PER_USER = 1
    sku = SkuFactory(code="TX-VIP-MONTH")
    stock_codes(sku, 10)
    order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)

    later = timezone.now() + dt.timedelta(
        minutes=settings.ORDER_PAYMENT_TIMEOUT_MINUTES + 1
    )
    order = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1, now=later)

    assert order.pk


def test_order_expire_unpaid_cancels_and_releases_codes(alice, settings):
    sku = SkuFactory(code="TX-VIP-MONTH")
    stock_codes(sku, 3)
    order = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=2)
    fresh = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)
    Order.objects.filter(pk=fresh.pk).update(
        expires_at=timezone.now() + dt.timedelta(hours=1)
    )

    cancelled = order_expire_unpaid(now=timezone.now() + dt.timedelta(minutes=16))

    order.refresh_from_db()
    assert (cancelled, order.status) == (1, Order.Status.CANCELLED)
    assert available(sku) == 2
    assert not CardCode.objects.filter(order_line__order=order).exists()
    assert (
        order.events.filter(kind=OrderEvent.Kind.CANCELLED)
        .get()
        .detail["released_codes"]
        == 2
    )
    assert order_expire_unpaid(now=timezone.now() + dt.timedelta(minutes=16)) == 0


def test_order_cancel_leaves_non_pending_order_alone(alice):
    sku = SkuFactory(code="TX-VIP-MONTH")
    stock_codes(sku, 1)
    order = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)
    Order.objects.filter(pk=order.pk).update(status=Order.Status.DELIVERED)

    assert order_cancel(order_id=order.pk, reason="test") is False
    assert available(sku) == 0


def test_expire_orders_command_cancels_overdue(alice, capsys):
    from django.core.management import call_command

    sku = SkuFactory(code="TX-VIP-MONTH")
    stock_codes(sku, 1)
    order = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)
    Order.objects.filter(pk=order.pk).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )

    call_command("expire_orders")

    assert "cancelled 1" in capsys.readouterr().out
    assert available(sku) == 1


def test_order_numbers_draw_every_character_of_the_alphabet_everywhere():
    from orders.models.orders import _NUMBER_ALPHABET, new_order_number

    numbers = [new_order_number() for _ in range(1000)]

    assert all(n.startswith("KQ") and len(n) == 20 for n in numbers)
    assert len(set(numbers)) == 1000
    for position in (2, 10, 19):  # the first, a middle and the last character
        assert {n[position] for n in numbers} == set(_NUMBER_ALPHABET)
