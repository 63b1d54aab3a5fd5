"""Query budgets on the paid path: contracts. Raising one needs a reason in a note.

Counts as measured when orders gained lines of any kind (issue 5), equal to the
counts before that rework: checkout POST 16, notify of a card-code order 18
(savepoints included, as the test database counts them).
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from orders.models import Order
from tests.conftest import signed_notify
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes

pytestmark = pytest.mark.django_db

CHECKOUT_POST_MAX_QUERIES = 16
NOTIFY_CARD_CODE_MAX_QUERIES = 18


@pytest.fixture
def sku():
    sku = SkuFactory(code="TX-VIP-MONTH")
    stock_codes(sku, 5)
    return sku


def test_checkout_post_stays_within_its_query_budget(
    alice_client, sku, django_assert_max_num_queries
):
    alice_client.get("/")  # the session exists already, as for a real shopper

    with django_assert_max_num_queries(CHECKOUT_POST_MAX_QUERIES):
        response = alice_client.post(
            reverse("orders:checkout"),
            {"sku": "TX-VIP-MONTH", "quantity": 2, "token": "t-1"},
        )

    assert response.status_code == 302
    assert Order.objects.get().lines.get().codes.count() == 2


def test_notify_of_a_card_code_order_stays_within_its_query_budget(
    alice_client, sku, django_assert_max_num_queries
):
    alice_client.post(
        reverse("orders:checkout"), {"sku": "TX-VIP-MONTH", "quantity": 1, "token": "t"}
    )
    order = Order.objects.get()

    with django_assert_max_num_queries(NOTIFY_CARD_CODE_MAX_QUERIES):
        response = Client().post(
            reverse("orders:payment-notify", args=["sandbox"]), signed_notify(order)
        )

    assert response.content == b"success"
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
