"""Back on the order page from a gateway's cashier (`?paying=<gateway>`).

Against the Alipay stand-in over HTTP with the shop's notify URL unreachable
(every notify is lost): the page asks Alipay itself, at most once every few
seconds, and honours a paid trade as the lost-notify sweep does. The sandbox
says "paid, notify to come" from its own trades.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from urllib.parse import urlsplit

import httpx
import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from orders.guest import access_token
from orders.models import Order, Payment, PaymentNotify
from orders.services import order_place
from orders.services.payment_return import RETURN_CONFIRM_FOR
from tests.factories.orders import sandbox_trade_paid
from tests.orders.gateways.conftest import (  # noqa: F401
    alipay,
    app_key,
    cashier_submit,
)

pytestmark = pytest.mark.django_db
LOST = "http://127.0.0.1:9"  # nothing listens: Alipay's notifies are lost
CONFIRMING = "支付确认中"
PAY_NOW = "去支付"


@pytest.fixture
def order(alice, sku):
    return order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=2)


@pytest.fixture
def lost_notifies(settings):
    settings.PAYMENT_NOTIFY_BASE_URL = LOST


def detail(number: str) -> str:
    return reverse("orders:order-detail", args=[number])


def queried(standin, order: Order) -> int:
    return sum(
        1
        for request in standin.requests
        if request.get("method") == "alipay.trade.query"
        and order.number in request.get("biz_content", "")
    )


def pay_at_alipay(client: Client, order: Order, *, action: str = "pay") -> str:
    """ "Pay now" with Alipay on the order page, then the cashier: the return
    address (path and query) the shopper's browser is sent back to."""
    response = client.post(
        reverse("orders:order-pay", args=[order.number]), {"gateway": "alipay"}
    )
    assert response.status_code == 302, response
    if action != "pay":  # the cashier opened, nothing paid
        httpx.get(response["Location"], timeout=5).raise_for_status()
        return detail(order.number) + "?paying=alipay"
    back = cashier_submit(response["Location"])
    assert back.status_code == 302
    url = urlsplit(back.headers["location"])
    return f"{url.path}?{url.query}"


def test_back_from_alipay_the_shopper_sees_the_order_paid_and_delivered(
    alipay,  # noqa: F811
    lost_notifies,
    alice_client,
    order,
):
    back = pay_at_alipay(alice_client, order)
    assert back.startswith(detail(order.number) + "?paying=alipay&")

    page = alice_client.get(back)

    assert page.status_code == 200
    html = page.content.decode()
    assert "已发货" in html
    assert CONFIRMING not in html
    assert PAY_NOW not in html
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    payment = Payment.objects.get(order=order)
    assert (payment.gateway, payment.amount) == ("alipay", Decimal("50.00"))
    # Recorded exactly as the lost-notify sweep records what it finds.
    notify = PaymentNotify.objects.get()
    assert notify.notify_id == f"query:{payment.trade_no}"
    assert notify.payload["source"] == "query"


def test_a_guest_back_by_their_link_keeps_the_marker(
    alipay,  # noqa: F811
    lost_notifies,
    sku,
):
    order = order_place(
        user=None,
        sku_code="TX-VIP-MONTH",
        quantity=1,
        guest_email="guest@example.com",
        guest_password="secret12",
    )
    paying = Client()
    paying.get(detail(order.number), {"t": access_token(order.number)})
    pay_at_alipay(paying, order)
    # Another browser, with the access link and the marker.
    browser = Client()

    landed = browser.get(
        detail(order.number), {"t": access_token(order.number), "paying": "alipay"}
    )

    assert landed.status_code == 302
    assert landed["Location"] == detail(order.number) + "?paying=alipay"
    assert browser.get(landed["Location"]).status_code == 200
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED


def test_not_paid_yet_leaves_it_pending_with_the_banner_and_polls_with_the_marker(
    alipay,  # noqa: F811
    lost_notifies,
    alice_client,
    order,
):
    back = pay_at_alipay(alice_client, order, action="open")

    html = alice_client.get(back).content.decode()

    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert CONFIRMING in html
    assert PAY_NOW not in html
    assert f'data-poll="{detail(order.number)}?paying=alipay"' in html
    assert queried(alipay, order) == 1
    assert not PaymentNotify.objects.exists()


def test_the_gateway_is_asked_at_most_once_every_few_seconds(
    alipay,  # noqa: F811
    lost_notifies,
    alice_client,
    order,
):
    back = pay_at_alipay(alice_client, order, action="open")
    alice_client.get(back)

    second = alice_client.get(back).content.decode()

    assert queried(alipay, order) == 1
    assert CONFIRMING in second
    # The few seconds passed: asked again.
    cache.delete(f"orders:paying-query:{order.number}")
    alice_client.get(back)
    assert queried(alipay, order) == 2


def test_the_banner_ends_after_its_window(
    alipay,  # noqa: F811
    lost_notifies,
    alice_client,
    order,
):
    back = pay_at_alipay(alice_client, order, action="open")
    alice_client.get(back)
    cache.set(
        f"orders:paying-since:{order.number}", time.time() - RETURN_CONFIRM_FOR - 1
    )
    cache.delete(f"orders:paying-query:{order.number}")

    html = alice_client.get(back).content.decode()

    assert CONFIRMING not in html
    assert PAY_NOW in html
    assert "data-poll" not in html
    assert queried(alipay, order) == 1


def test_an_unreachable_gateway_is_a_warning_not_an_error_page(
    alipay,  # noqa: F811
    lost_notifies,
    alice_client,
    order,
    caplog,
):
    back = pay_at_alipay(alice_client, order)
    alipay.fail_next_http = 10

    with caplog.at_level(logging.WARNING, logger="orders.services.notify_sweep"):
        page = alice_client.get(back)

    assert page.status_code == 200
    assert CONFIRMING in page.content.decode()
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert any("could not query alipay" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "marker",
    ["", "nope", "wechat", "<script>alert(1)</script>", "alipay' OR '1'='1", "é" * 300],
)
def test_a_forged_or_unknown_marker_changes_nothing(
    alipay,  # noqa: F811
    lost_notifies,
    alice_client,
    order,
    marker,
):
    pay_at_alipay(alice_client, order)  # paid at Alipay, the notify lost

    page = alice_client.get(detail(order.number), {"paying": marker})

    assert page.status_code == 200
    html = page.content.decode()
    assert CONFIRMING not in html
    assert PAY_NOW in html
    assert "<script>alert(1)" not in html
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
    assert queried(alipay, order) == 0


def test_a_paid_order_is_never_queried(
    alipay,  # noqa: F811
    lost_notifies,
    alice_client,
    order,
):
    back = pay_at_alipay(alice_client, order)
    alice_client.get(back)  # paid by the page's query
    cache.clear()

    page = alice_client.get(back)

    assert page.status_code == 200
    assert queried(alipay, order) == 1


def test_the_sandbox_says_its_paid_trade_is_being_confirmed(alice_client, order):
    plain = alice_client.get(detail(order.number)).content.decode()
    assert CONFIRMING not in plain
    assert PAY_NOW in plain

    sandbox_trade_paid(order)
    html = alice_client.get(detail(order.number)).content.decode()

    assert CONFIRMING in html
    assert PAY_NOW not in html
    assert f'data-poll="{detail(order.number)}"' in html
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING  # its notify applies it
