"""Claiming guest orders into an account that verified the same email."""

from __future__ import annotations

from decimal import Decimal

import pytest
from allauth.account.models import EmailAddress
from allauth.account.signals import email_confirmed
from django.test import Client
from django.urls import reverse

from orders.guest import access_token
from orders.models import Order, OrderEvent
from orders.services import order_place
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes

pytestmark = pytest.mark.django_db

ORDERS = reverse("orders:order-list")
CLAIM = reverse("orders:guest-claim")


@pytest.fixture
def sku(db):
    sku = SkuFactory(code="TX-M", price=Decimal("25.00"))
    stock_codes(sku, 5)
    return sku


def guest_order(email: str, token: str) -> Order:
    return order_place(
        user=None,
        sku_code="TX-M",
        quantity=1,
        guest_email=email,
        guest_password="secret12",
        client_token=token,
    )


def test_the_list_says_how_many_wait_and_the_button_claims_them(
    alice_client, alice, sku
):
    EmailAddress.objects.create(
        user=alice, email="Alice.Guest@Example.com", verified=True, primary=False
    )
    mine = [guest_order("alice.guest@example.com", t) for t in ("a", "b")]
    someone_elses = guest_order("bob@example.com", "c")

    page = alice_client.get(ORDERS).content.decode()
    assert "您的已验证邮箱下有 2 笔未登录时购买的订单" in page

    response = alice_client.post(CLAIM, follow=True)

    assert "已将 2 笔用相同邮箱下的游客订单归入您的账号" in response.content.decode()
    for order in mine:
        order.refresh_from_db()
        assert order.user == alice
        # Now the account's: the guest keys stop working.
        assert (order.lookup_password, order.access_token_hash) == ("", "")
        assert order.number in response.content.decode()
    someone_elses.refresh_from_db()
    assert someone_elses.user is None
    assert OrderEvent.objects.filter(kind="claimed", actor=alice).count() == 2
    assert "未登录时购买的订单" not in alice_client.get(ORDERS).content.decode()
    # The old access link opens nothing now.
    stranger = Client()
    number = mine[0].number
    url = reverse("orders:order-detail", args=[number])
    assert stranger.get(url, {"t": access_token(number)}).status_code == 404


def test_claiming_twice_claims_nothing_more(alice_client, alice, sku):
    EmailAddress.objects.create(user=alice, email="alice@example.com", verified=True)
    guest_order("alice@example.com", "a")
    alice_client.post(CLAIM)

    again = alice_client.post(CLAIM, follow=True)

    assert "没有可归入的游客订单" in again.content.decode()
    assert OrderEvent.objects.filter(kind="claimed").count() == 1


def test_an_unverified_email_claims_nothing(alice_client, alice, sku):
    EmailAddress.objects.create(user=alice, email="alice@example.com", verified=False)
    order = guest_order("alice@example.com", "a")

    assert "未登录时购买的订单" not in alice_client.get(ORDERS).content.decode()
    alice_client.post(CLAIM)

    order.refresh_from_db()
    assert order.user is None


def test_confirming_an_email_claims_its_guest_orders(alice, sku):
    order = guest_order("alice@example.com", "a")
    address = EmailAddress.objects.create(
        user=alice, email="alice@example.com", verified=True
    )

    email_confirmed.send(sender=EmailAddress, request=None, email_address=address)
    email_confirmed.send(sender=EmailAddress, request=None, email_address=address)

    order.refresh_from_db()
    assert order.user == alice
    assert OrderEvent.objects.filter(order=order, kind="claimed").count() == 1


def test_claiming_needs_a_login(client):
    response = client.post(CLAIM)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
