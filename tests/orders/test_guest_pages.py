"""A guest's way around their order's pages: no link that only works for an
account (a login page for someone who has none), the order lookup instead;
anyone logged in keeps "my orders"."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from orders.guest import access_token
from orders.services import order_place
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes
from tests.orders.aftersales.conftest import pay

pytestmark = pytest.mark.django_db

MY_ORDERS = f'href="{reverse("orders:order-list")}"'
LOOKUP = f'href="{reverse("orders:order-lookup")}"'


@pytest.fixture
def sku(db):
    sku = SkuFactory(code="TX-M", price=Decimal("25.00"))
    stock_codes(sku, 5)
    return sku


@pytest.fixture
def guest_order(sku, django_capture_on_commit_callbacks):
    """A delivered guest order (one code)."""
    order = order_place(
        user=None,
        sku_code="TX-M",
        quantity=1,
        guest_email="guest@example.com",
        guest_password="secret12",
    )
    with django_capture_on_commit_callbacks(execute=True):
        return pay(Client(), order)


def detail(number: str) -> str:
    return reverse("orders:order-detail", args=[number])


def _by_link(order) -> Client:
    browser = Client()
    browser.get(detail(order.number), {"t": access_token(order.number)})
    return browser


def _by_lookup(order) -> Client:
    browser = Client()
    response = browser.post(
        reverse("orders:order-lookup"),
        {"number": order.number, "email": order.email, "password": "secret12"},
    )
    assert response.status_code == 302
    return browser


def assert_guests_way_around(html: str) -> None:
    """Back to the lookup (breadcrumb, back link, nav); "my orders" nowhere."""
    assert MY_ORDERS not in html
    assert html.count(LOOKUP) >= 3  # breadcrumb, nav and back link (+ footer)
    assert "查询其他订单" in html
    assert "返回我的订单" not in html


@pytest.mark.parametrize("way_in", [_by_link, _by_lookup])
def test_a_guests_order_page_leads_back_to_the_lookup_not_my_orders(
    guest_order, way_in
):
    browser = way_in(guest_order)

    response = browser.get(detail(guest_order.number))

    assert response.status_code == 200
    assert_guests_way_around(response.content.decode())


def test_a_guests_pending_order_page_leads_back_to_the_lookup(sku):
    order = order_place(
        user=None,
        sku_code="TX-M",
        quantity=1,
        guest_email="guest@example.com",
        guest_password="secret12",
    )

    html = _by_link(order).get(detail(order.number)).content.decode()

    assert "去支付" in html
    assert_guests_way_around(html)


def test_a_guests_problem_report_with_errors_leads_back_to_the_lookup(guest_order):
    line = guest_order.lines.get()
    browser = _by_link(guest_order)

    response = browser.post(
        reverse("orders:line-report", args=[guest_order.number, line.id]),
        {"kind": "code_invalid", "message": ""},
    )

    assert response.status_code == 400
    assert_guests_way_around(response.content.decode())


def test_a_guests_reveal_without_javascript_leads_back_to_the_lookup(guest_order):
    code = guest_order.lines.get().codes.get()
    browser = _by_link(guest_order)

    response = browser.post(
        reverse("orders:code-reveal", args=[guest_order.number, code.id])
    )

    assert response.status_code == 200
    assert_guests_way_around(response.content.decode())


def test_a_guests_after_sales_outcome_page_leads_back_to_the_lookup(guest_order):
    line = guest_order.lines.get()
    browser = _by_link(guest_order)

    response = browser.post(
        reverse("orders:line-refund", args=[guest_order.number, line.id]),
        follow=True,
    )

    assert response.status_code == 200
    assert "已退回 1 张未查看的卡密" in response.content.decode()
    assert_guests_way_around(response.content.decode())


def test_the_account_keeps_my_orders_on_its_order_page(
    alice_client, alice, sku, django_capture_on_commit_callbacks
):
    order = order_place(user=alice, sku_code="TX-M", quantity=1)
    with django_capture_on_commit_callbacks(execute=True):
        pay(Client(), order)

    html = alice_client.get(detail(order.number)).content.decode()

    assert html.count(MY_ORDERS) == 3  # breadcrumb, nav and back link
    assert "返回我的订单" in html
    assert "查询其他订单" not in html


def test_a_logged_in_visitor_with_a_guest_orders_link_keeps_my_orders(
    guest_order, alice
):
    browser = _by_link(guest_order)
    browser.force_login(alice)

    html = browser.get(detail(guest_order.number)).content.decode()

    assert "返回我的订单" in html
    assert MY_ORDERS in html


def test_the_guests_links_in_english(guest_order):
    browser = _by_link(guest_order)
    browser.post(reverse("set_language"), {"language": "en"})

    html = browser.get(detail(guest_order.number)).content.decode()

    assert "Look up another order" in html
    assert MY_ORDERS not in html
