"""The notify's urlencoded form as Django reads it (config/lib/formbody.py): what a
gateway (or a forger) sends reaches the notify as request.POST would give it."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import reverse

from orders.models import Order, PaymentNotify
from orders.services import order_place
from tests.conftest import signed_notify

NOTIFY_URL = reverse("orders:payment-notify", args=["sandbox"])
URLENCODED = "application/x-www-form-urlencoded"


@pytest.fixture
def order(alice, sku):
    return order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)


def test_a_repeated_field_counts_with_its_last_value_as_in_request_post(order):
    fields = signed_notify(order)
    body = "trade_status=TRADE_CLOSED&" + urlencode(fields)  # the signed one last

    response = Client().post(NOTIFY_URL, body, content_type=URLENCODED)

    assert response.content == b"success"
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    assert PaymentNotify.objects.get().payload["trade_status"] == "TRADE_SUCCESS"


def test_a_notify_with_too_many_fields_is_a_400_not_a_500(settings, order):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 3

    response = Client().post(
        NOTIFY_URL, urlencode(signed_notify(order)), content_type=URLENCODED
    )

    assert response.status_code == 400
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_a_form_notify_in_another_charset_is_a_400_not_a_500(order):
    response = Client().post(
        NOTIFY_URL,
        urlencode(signed_notify(order)),
        content_type=URLENCODED + "; charset=latin-1",
    )

    assert response.status_code == 400
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING
