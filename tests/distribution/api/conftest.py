"""Partners for the API tests: acme (a partner with a balance) and globex (another).

Prices: the card SKU `TX-VIP-MONTH` retails at 30.00; the partners' tier takes
10 % off (27.00); its codes cost the shop 20.00 each.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from distribution.models import ApiKey, PartnerAccount
from distribution.partners.balance import balance_top_up
from distribution.partners.keys import api_key_create, partner_account_ensure
from distribution.partners.signing import request_sign
from tests.factories.accounts import UserFactory
from tests.factories.catalog import SkuFactory
from tests.factories.distribution import ResellerFactory, TierFactory
from tests.factories.fulfillment import stock_codes

RETAIL = Decimal("30.00")
TIER_PRICE = Decimal("27.00")
COST = Decimal("20.00")
API = "/api/v1"


@dataclass
class Partner:
    account: PartnerAccount
    key: ApiKey
    secret: str

    @property
    def user(self):
        return self.account.reseller.user


def signed_headers(
    partner: Partner | None,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    key_id: str | None = None,
    secret: str | None = None,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four headers SPEC §4.4 asks for; pass any of them to break one."""
    timestamp_text = str(int(time.time()) if timestamp is None else timestamp)
    nonce = secrets.token_hex(12) if nonce is None else nonce
    key_id = key_id if key_id is not None else partner.key.key_id
    secret = secret if secret is not None else partner.secret
    return {
        "X-Api-Key": key_id,
        "X-Timestamp": timestamp_text,
        "X-Nonce": nonce,
        "X-Signature": request_sign(
            secret=secret,
            method=method,
            path=path,
            timestamp=timestamp_text,
            nonce=nonce,
            body=body,
        ),
    }


class SignedClient:
    """Django's test client, signing every request as `partner` (or unsigned)."""

    def __init__(self, client, partner: Partner) -> None:
        self.client = client
        self.partner = partner

    def get(self, path: str, **signing: Any):
        headers = signed_headers(self.partner, "GET", path, **signing)
        return self.client.get(path, headers=headers)

    def post(
        self,
        path: str,
        payload: Any = None,
        *,
        raw: bytes | None = None,
        **signing: Any,
    ):
        body = raw if raw is not None else json.dumps(payload).encode()
        headers = signed_headers(self.partner, "POST", path, body, **signing)
        return self.client.generic(
            "POST", path, body, content_type="application/json", headers=headers
        )

    def order(
        self,
        out_trade_no: str = "A-1",
        sku: str = "TX-VIP-MONTH",
        quantity: int = 1,
        **extra: Any,
    ):
        return self.post(
            f"{API}/orders",
            {"out_trade_no": out_trade_no, "sku": sku, "quantity": quantity, **extra},
        )


def make_partner(username: str, *, tier, balance: Decimal) -> Partner:
    reseller = ResellerFactory(user=UserFactory(username=username), tier=tier)
    account = partner_account_ensure(reseller=reseller)
    key, secret = api_key_create(account=account)
    if balance:
        balance_top_up(account=account, amount=balance, actor=None)
    return Partner(account=account, key=key, secret=secret)


@pytest.fixture
def partner_tier(db):
    return TierFactory(name="总代", discount_rate=Decimal("0.10"))


@pytest.fixture
def card_sku(db):
    sku = SkuFactory(code="TX-VIP-MONTH", price=RETAIL, max_per_order=5)
    stock_codes(sku, 30, cost_price=COST)
    return sku


@pytest.fixture
def acme(partner_tier):
    return make_partner("acme", tier=partner_tier, balance=Decimal("100.00"))


@pytest.fixture
def globex(partner_tier):
    return make_partner("globex", tier=partner_tier, balance=Decimal("100.00"))


@pytest.fixture
def api(client, acme):
    return SignedClient(client, acme)


def error_of(response) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    return response.status_code, body["error"]["code"]
