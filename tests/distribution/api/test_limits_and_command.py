"""Rate limits per key (429), `create_partner` (SPEC §4.1), the balance gateway's refunds."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from distribution.models import ApiKey, PartnerAccount, PartnerBalanceEntry, Reseller
from distribution.partners.balance import balance_of
from distribution.partners.signing import request_sign
from orders.gateways import gateway_for_payment, gateway_get, gateways_all
from orders.models import Order, Payment
from tests.distribution.api.conftest import API, SignedClient, error_of
from tests.factories.distribution import TierFactory

pytestmark = pytest.mark.django_db


def test_requests_over_the_keys_limit_get_429(api, client, globex, settings):
    settings.PARTNER_API_RATE_LIMIT = "3/m"

    answers = [api.get(f"{API}/balance").status_code for _ in range(4)]
    limited = api.get(f"{API}/balance")

    assert answers == [200, 200, 200, 429]
    assert error_of(limited) == (429, "rate_limited")
    assert int(limited["Retry-After"]) >= 1
    # Another key has its own count.
    assert SignedClient(client, globex).get(f"{API}/balance").status_code == 200


def test_create_partner_prints_a_working_key_and_sets_the_balance(client, db):
    TierFactory(name="总代")
    out = StringIO()

    call_command(
        "create_partner",
        "Shop@Example.com",
        "--balance",
        "500.00",
        "--tier",
        "总代",
        stdout=out,
    )

    key_id, secret = out.getvalue().split()
    key = ApiKey.objects.get(key_id=key_id)
    reseller = key.account.reseller
    assert reseller.status == Reseller.Status.APPROVED
    assert reseller.tier.name == "总代"
    assert balance_of(account_id=key.account_id) == Decimal("500.00")
    headers = {"X-Api-Key": key_id, "X-Timestamp": "0", "X-Nonce": "n1"}
    import time

    headers["X-Timestamp"] = str(int(time.time()))
    headers["X-Signature"] = request_sign(
        secret=secret,
        method="GET",
        path=f"{API}/balance",
        timestamp=headers["X-Timestamp"],
        nonce="n1",
        body=b"",
    )
    assert client.get(f"{API}/balance", headers=headers).json() == {"balance": "500.00"}


def test_create_partner_again_adjusts_the_balance_and_issues_another_key(db):
    call_command(
        "create_partner", "shop@example.com", "--balance", "500.00", stdout=StringIO()
    )
    out = StringIO()

    call_command(
        "create_partner", "shop@example.com", "--balance", "120.50", stdout=out
    )
    call_command(
        "create_partner", "shop@example.com", "--balance", "120.50", stdout=StringIO()
    )

    account = PartnerAccount.objects.get()
    assert balance_of(account_id=account.pk) == Decimal("120.50")
    kinds = list(
        PartnerBalanceEntry.objects.order_by("id").values_list("kind", "amount")
    )
    assert kinds == [
        ("adjustment", Decimal("500.00")),
        ("adjustment", Decimal("-379.50")),
    ]
    assert ApiKey.objects.filter(account=account, revoked_at__isnull=True).count() == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a@example.com", "--balance", "-1"], "non-negative"),
        (["a@example.com", "--balance", "1.234"], "2 decimals"),
        (["a@example.com", "--balance", "abc"], "not a number"),
        (["not-an-email", "--balance", "1"], "email"),
        (["a@example.com", "--balance", "1", "--tier", "无此等级"], "no tier"),
    ],
)
def test_create_partner_refuses_bad_input_and_writes_nothing(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_partner", *args, stdout=StringIO())

    assert not PartnerAccount.objects.exists()


def test_the_balance_gateway_is_never_offered_nor_notified(db):
    assert gateway_get("balance") is None
    assert "balance" not in {g.name for g in gateways_all()}
    assert gateway_for_payment("balance") is not None


def test_balance_refunds_credit_once_per_refund_number(api, acme, card_sku):
    number = api.order("A-1").json()["number"]
    payment = Payment.objects.get(order=Order.objects.get(number=number))
    gateway = gateway_for_payment("balance")

    gateway.refund(payment=payment, amount=Decimal("27.00"), refund_no="R1")
    gateway.refund(payment=payment, amount=Decimal("27.00"), refund_no="R1")

    assert balance_of(account_id=acme.account.pk) == Decimal("100.00")
    assert gateway.refund_query(payment=payment, refund_no="R1").amount == Decimal(
        "27.00"
    )
    assert gateway.refund_query(payment=payment, refund_no="R2") is None
    assert gateway.query(out_trade_no=number).amount == Decimal("27.00")
