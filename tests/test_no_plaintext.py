"""No plaintext card code in any database column or log line, through the whole journey."""

from __future__ import annotations

import logging

import pytest
from django.db import connection
from django.urls import reverse

from orders.services import order_place
from tests.conftest import signed_notify
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import make_codes, stock_codes

pytestmark = pytest.mark.django_db


def _all_text_in_database() -> str:
    chunks = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
        for (table,) in cursor.fetchall():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 (names from the catalog)
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def test_codes_never_stored_or_logged_in_plaintext(
    alice_client, alice, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)
    sku = SkuFactory(code="TX-VIP-MONTH")
    codes = make_codes(4, prefix="PLAIN")

    stock_codes(sku, codes)
    order = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=2)
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(
            reverse("orders:payment-notify", args=["sandbox"]), signed_notify(order)
        )
    code_ids = list(order.lines.get().codes.values_list("id", flat=True))
    revealed = [
        alice_client.post(
            reverse("orders:code-reveal", args=[order.number, code_id]),
            HTTP_ACCEPT="application/json",
        ).json()["code"]
        for code_id in code_ids
    ]

    assert set(revealed) <= set(codes)
    assert len(set(revealed)) == 2
    stored = _all_text_in_database()
    logged = caplog.text
    assert len(stored) > 1000  # the scan really read the tables
    for code in codes:
        assert code not in stored
        assert code not in logged
