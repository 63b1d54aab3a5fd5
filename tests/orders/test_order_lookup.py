"""/orders/lookup/: a guest order by number, email and lookup password; one answer
for every miss; rate-limited per client address and per order number."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from orders.guest_views import ERR_LOOKUP, ERR_LOOKUP_LIMITED
from orders.models import Order
from orders.services import order_place
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes

pytestmark = pytest.mark.django_db

LOOKUP = reverse("orders:order-lookup")


@pytest.fixture
def sku(db):
    sku = SkuFactory(code="TX-M", price=Decimal("25.00"))
    stock_codes(sku, 5)
    return sku


@pytest.fixture
def order(sku) -> Order:
    return order_place(
        user=None,
        sku_code="TX-M",
        quantity=1,
        guest_email="guest@example.com",
        guest_password="secret12",
    )


def detail(number: str) -> str:
    return reverse("orders:order-detail", args=[number])


def lookup(client: Client, number: str, email: str, password: str):
    return client.post(LOOKUP, {"number": number, "email": email, "password": password})


def _alert(response) -> str:
    text = response.content.decode()
    return text.split('id="lookup-errors"', 1)[1].split("</div>", 1)[0]


def test_the_page_asks_for_number_email_and_password(client):
    page = client.get(LOOKUP).content.decode()

    for name in ("number", "email", "password"):
        assert f'name="{name}"' in page
        assert f'for="id_{name}"' in page


def test_the_right_three_open_that_order_and_only_it(client, order):
    other = order_place(
        user=None,
        sku_code="TX-M",
        quantity=1,
        guest_email="guest@example.com",
        guest_password="secret12",
        client_token="another",
    )

    # Typed as people type: lower-case number, mixed-case email.
    response = lookup(client, order.number.lower(), "Guest@Example.COM", "secret12")

    assert response.status_code == 302
    assert response["Location"] == detail(order.number)
    assert client.get(detail(order.number)).status_code == 200
    assert client.get(detail(other.number)).status_code == 302  # to the login page


@pytest.mark.parametrize(
    ("number", "email", "password"),
    [
        (None, "guest@example.com", "wrong-password"),
        (None, "someone@example.com", "secret12"),
        ("KQNOSUCHORDER0000000", "guest@example.com", "secret12"),
    ],
    ids=["wrong password", "wrong email", "unknown order"],
)
def test_every_miss_gets_the_same_answer(client, order, number, email, password):
    response = lookup(client, number or order.number, email, password)

    assert response.status_code == 400
    assert str(ERR_LOOKUP) in _alert(response)
    assert _alert(response) == _alert(
        lookup(Client(), "KQNOSUCHORDER0000001", "x@example.com", "whatever")
    )
    assert "secret12" not in response.content.decode()
    assert client.get(detail(order.number)).status_code == 302  # no access


def test_an_accounts_order_is_never_found_here(client, alice, sku):
    theirs = order_place(user=alice, sku_code="TX-M", quantity=1)

    response = lookup(client, theirs.number, "alice@example.com", "anything")

    assert response.status_code == 400
    assert client.get(detail(theirs.number)).status_code == 302


def test_missing_fields_come_back_at_their_fields(client):
    response = client.post(LOOKUP, {"number": "", "email": "bad", "password": ""})

    assert response.status_code == 400
    text = response.content.decode()
    assert "请填写订单号" in text.split('id="number-errors"', 1)[1]
    assert "请输入有效的邮箱地址" in text.split('id="email-errors"', 1)[1]
    assert "请填写查询密码" in text.split('id="password-errors"', 1)[1]


def test_too_many_tries_for_one_order_are_refused_even_with_the_right_password(
    order, settings
):
    settings.ORDER_LOOKUP_LIMIT_PER_ORDER = 3
    for n in range(3):
        # From different addresses: the order's own limit counts them all.
        attempt = Client(REMOTE_ADDR=f"10.0.0.{n + 1}")
        assert (
            lookup(attempt, order.number, "guest@example.com", "nope").status_code
            == 400
        )

    late = Client(REMOTE_ADDR="10.0.0.9")
    response = lookup(late, order.number, "guest@example.com", "secret12")

    assert response.status_code == 429
    assert str(ERR_LOOKUP_LIMITED) in _alert(response)
    assert late.get(detail(order.number)).status_code == 302  # no access granted


def test_too_many_tries_from_one_address_are_refused(order, settings):
    settings.ORDER_LOOKUP_LIMIT_PER_IP = 2
    client = Client()
    for n in range(2):
        assert (
            lookup(client, f"KQGUESS{n:013d}", "guest@example.com", "x").status_code
            == 400
        )

    response = lookup(client, order.number, "guest@example.com", "secret12")

    assert response.status_code == 429
    # Another address still gets its answer.
    assert (
        lookup(
            Client(REMOTE_ADDR="10.1.1.1"),
            order.number,
            "guest@example.com",
            "secret12",
        ).status_code
        == 302
    )


def test_every_page_links_to_the_order_lookup_in_its_footer(client):
    """A guest who lost the email finds the lookup from any page."""
    from django.urls import reverse

    assert (
        f'href="{reverse("orders:order-lookup")}"' in client.get("/").content.decode()
    )
