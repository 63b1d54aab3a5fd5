"""The sandbox gateway over real HTTP: the pay page's notify reaches our endpoint on loopback."""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.http import parse_http_date

from orders.models import Order, PaymentNotify, SandboxTrade
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import available, stock_codes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop(live_server, settings, client, alice):
    settings.PAYMENT_NOTIFY_BASE_URL = live_server.url
    sku = SkuFactory(code="TX-VIP-MONTH")
    stock_codes(sku, 3)
    client.force_login(alice)
    client.post(
        reverse("orders:checkout"), {"sku": "TX-VIP-MONTH", "quantity": 1, "token": "t"}
    )
    return sku, Order.objects.get(), SandboxTrade.objects.get()


def test_sandbox_pay_sends_signed_notify_over_http_and_order_is_delivered(client, shop):
    _sku, order, trade = shop

    response = client.post(
        reverse("orders:sandbox-pay", args=[trade.token]), {"action": "pay"}
    )

    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    notify = PaymentNotify.objects.get()
    assert (notify.outcome, notify.remote_addr) == ("paid", "127.0.0.1")
    assert notify.payload["trade_no"] == trade.trade_no


def test_sandbox_pay_double_click_sends_one_notify(client, shop):
    _sku, _order, trade = shop

    client.post(reverse("orders:sandbox-pay", args=[trade.token]), {"action": "pay"})
    client.post(reverse("orders:sandbox-pay", args=[trade.token]), {"action": "pay"})

    assert PaymentNotify.objects.count() == 1


def test_sandbox_cancel_notifies_closed_and_releases_stock(client, shop):
    sku, order, trade = shop

    client.post(reverse("orders:sandbox-pay", args=[trade.token]), {"action": "cancel"})

    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert PaymentNotify.objects.get().outcome == "closed"
    assert available(sku) == 3


def test_expired_order_cannot_be_paid_any_more(client, shop):
    from django.utils import timezone

    from orders.services import order_expire_unpaid

    sku, order, trade = shop

    order_expire_unpaid(now=timezone.now() + timezone.timedelta(hours=1))
    response = client.post(
        reverse("orders:sandbox-pay", args=[trade.token]), {"action": "pay"}
    )

    trade.refresh_from_db()
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert trade.status == SandboxTrade.Status.CLOSED
    assert response.status_code == 200
    assert not PaymentNotify.objects.exists()
    assert available(sku) == 3


@pytest.mark.parametrize(
    ("method", "data", "status"),
    [("get", None, 200), ("post", {"action": "x"}, 400), ("put", None, 405)],
)
def test_sandbox_pay_page_is_never_cached_as_never_cache_marks_it(
    client, shop, method, data, status
):
    _sku, _order, trade = shop
    django_marked = HttpResponse()
    add_never_cache_headers(django_marked)

    response = getattr(client, method)(
        reverse("orders:sandbox-pay", args=[trade.token]), data
    )

    assert response.status_code == status
    assert response["Cache-Control"] == django_marked["Cache-Control"]
    expires = parse_http_date(response["Expires"])
    assert abs(expires - parse_http_date(django_marked["Expires"])) <= 5
