"""The same balance is never spent twice: 50 orders at once over real HTTP, money for 20."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import pytest

from distribution.models import PartnerBalanceEntry
from distribution.partners.balance import balance_of
from fulfillment.models import CardCode
from orders.models import Order
from tests.distribution.api.conftest import (
    API,
    TIER_PRICE,
    error_of,
    make_partner,
    signed_headers,
)
from tests.factories.catalog import SkuFactory
from tests.factories.distribution import TierFactory
from tests.factories.fulfillment import stock_codes

pytestmark = pytest.mark.django_db(transaction=True)

ORDERS = 50
AFFORDABLE = 20


def test_fifty_parallel_orders_spend_a_balance_for_twenty_exactly_once(live_server):
    sku = SkuFactory(code="TX-VIP-MONTH", price=Decimal("30.00"), max_per_order=5)
    stock_codes(sku, ORDERS + 5, cost_price=Decimal("20.00"))
    tier = TierFactory(name="总代", discount_rate=Decimal("0.10"))
    partner = make_partner("acme", tier=tier, balance=TIER_PRICE * AFFORDABLE)
    path = f"{API}/orders"

    def place(n: int) -> httpx.Response:
        body = json.dumps(
            {"out_trade_no": f"P-{n}", "sku": "TX-VIP-MONTH", "quantity": 1}
        ).encode()
        headers = signed_headers(partner, "POST", path, body)
        headers["Content-Type"] = "application/json"
        return httpx.post(
            live_server.url + path, content=body, headers=headers, timeout=60
        )

    with ThreadPoolExecutor(max_workers=ORDERS) as pool:
        responses = list(pool.map(place, range(ORDERS)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * AFFORDABLE + [402] * (ORDERS - AFFORDABLE)
    assert all(
        error_of(r) == (402, "insufficient_balance")
        for r in responses
        if r.status_code == 402
    )
    assert balance_of(account_id=partner.account.pk) == Decimal("0.00")
    assert PartnerBalanceEntry.objects.filter(kind="debit").count() == AFFORDABLE
    assert Order.objects.filter(status=Order.Status.DELIVERED).count() == AFFORDABLE
    assert Order.objects.count() == AFFORDABLE
    codes = [c for r in responses if r.status_code == 201 for c in r.json()["codes"]]
    assert len(codes) == len(set(codes)) == AFFORDABLE
    assert CardCode.objects.filter(status=CardCode.Status.SOLD).count() == AFFORDABLE
