"""The request log in a flash sale: a sold-out answer (409) is expected, thousands
a second, and gets no warning line; other client errors still do."""

from __future__ import annotations

import logging

import pytest
from django.urls import reverse

from orders.services import order_place
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes

pytestmark = pytest.mark.django_db


@pytest.fixture
def sold_out(alice, settings):
    sku = SkuFactory(code="TX-FLASH")
    stock_codes(sku, 1)
    order_place(user=alice, sku_code="TX-FLASH", quantity=1)
    return sku


def _request_warnings(caplog):
    return [r for r in caplog.records if r.name == "django.request"]


def test_a_sold_out_answer_is_not_logged(alice_client, sold_out, caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        for token in ("a", "b"):  # the first finds nothing, the second the flag
            response = alice_client.post(
                reverse("orders:checkout"),
                {"sku": "TX-FLASH", "quantity": 1, "token": token},
            )
            assert response.status_code == 409

    assert _request_warnings(caplog) == []


def test_a_page_not_found_is_still_logged(client, caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert client.get("/p/no-such-product/").status_code == 404

    assert [r.status_code for r in _request_warnings(caplog)] == [404]


def test_a_risk_block_is_not_logged_but_a_csrf_failure_is(alice_client, caplog):
    from django.test import Client

    from risk.models import RiskListEntry, RiskRule, Subject
    from tests.factories.fulfillment import stock_codes
    from tests.factories.risk import RiskListEntryFactory, RiskRuleFactory

    stock_codes(SkuFactory(code="TX-M"), 2)
    alice_client.get("/")  # the device cookie
    RiskRuleFactory(
        kind=RiskRule.Kind.BLOCKLIST,
        subject=Subject.IP,
        action=RiskRule.ActionChoice.BLOCK,
    )
    RiskListEntryFactory(
        list_kind=RiskListEntry.ListKind.BLOCK, subject=Subject.IP, value="127.0.0.1"
    )
    with caplog.at_level(logging.WARNING):
        blocked = alice_client.post(
            reverse("orders:checkout"), {"sku": "TX-M", "quantity": 1, "token": "t"}
        )
        forged = Client(enforce_csrf_checks=True).post(
            reverse("orders:checkout"), {"sku": "TX-M", "quantity": 1, "token": "u"}
        )

    assert blocked.status_code == 403
    assert forged.status_code == 403
    assert _request_warnings(caplog) == []
    csrf = [r for r in caplog.records if r.name == "django.security.csrf"]
    assert [r.status_code for r in csrf] == [403]
