"""POST and GET /api/v1/orders (SPEC §4.4): tier prices, the balance, idempotency,
codes for their buyer only (audited), and every bad input a 400 with nothing written."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from distribution.models import PartnerBalanceEntry, PartnerOrder, TierPrice
from distribution.partners.balance import balance_of
from fulfillment.models import CardCode, CodeAccessLog
from orders.models import Order, OrderEvent, Payment
from tests.distribution.api.conftest import API, TIER_PRICE, SignedClient, error_of
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import available, stock_codes

pytestmark = pytest.mark.django_db


def test_order_is_paid_from_the_balance_at_the_tier_price_and_delivered(
    api, acme, card_sku
):
    response = api.order("A-1", quantity=2)

    assert response.status_code == 201
    body = response.json()
    order = Order.objects.get(number=body["number"])
    assert body["out_trade_no"] == "A-1"
    assert (body["status"], body["sku"], body["quantity"]) == (
        "delivered",
        "TX-VIP-MONTH",
        2,
    )
    assert body["amount"] == "54.00"  # 2 × 27.00, not the retail 60.00
    assert len(body["codes"]) == 2
    assert all(c.startswith("CODE") for c in body["codes"])
    assert body["topups"] == []
    assert order.user_id == acme.user.pk
    assert order.total_amount == Decimal("54.00")
    assert balance_of(account_id=acme.account.pk) == Decimal("46.00")
    payment = Payment.objects.get(order=order)
    assert (payment.gateway, payment.amount) == ("balance", Decimal("54.00"))
    assert api.get(f"{API}/balance").json() == {"balance": "46.00"}


def test_codes_in_the_reply_are_audited_as_the_storefront_reveal(api, acme, card_sku):
    body = api.order("A-1").json()

    code = CardCode.objects.get(order_line__order__number=body["number"])
    log = CodeAccessLog.objects.get(code=code)
    assert (log.actor_id, log.action) == (
        acme.user.pk,
        CodeAccessLog.Action.REVEALED_BY_BUYER,
    )
    assert (
        OrderEvent.objects.filter(
            order__number=body["number"], kind=OrderEvent.Kind.CODE_REVEALED
        ).count()
        == 1
    )

    api.get(f"{API}/orders/A-1")

    assert CodeAccessLog.objects.filter(code=code).count() == 2


def test_same_out_trade_no_and_body_returns_the_same_order_once_paid(
    api, acme, card_sku
):
    first = api.order("A-1")
    again = api.order("A-1")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["number"] == first.json()["number"]
    assert again.json()["codes"] == first.json()["codes"]
    assert Order.objects.count() == 1
    assert PartnerBalanceEntry.objects.filter(kind="debit").count() == 1
    assert balance_of(account_id=acme.account.pk) == Decimal("73.00")


def test_same_out_trade_no_with_another_body_is_409(api, acme, card_sku):
    api.order("A-1", quantity=1)

    response = api.order("A-1", quantity=2)

    assert error_of(response) == (409, "out_trade_no_reused")
    assert Order.objects.count() == 1
    assert balance_of(account_id=acme.account.pk) == Decimal("73.00")


def test_key_order_and_spacing_do_not_make_a_body_different(api, card_sku):
    api.order("A-1")
    raw = b'{ "quantity": 1,\n "sku": "TX-VIP-MONTH", "out_trade_no": "A-1" }'

    response = api.post(f"{API}/orders", raw=raw)

    assert response.status_code == 200


def test_get_returns_the_order_as_post_did(api, card_sku):
    placed = api.order("A-1").json()

    response = api.get(f"{API}/orders/A-1")

    assert response.status_code == 200
    assert response.json() == placed


def test_another_partners_order_is_not_found(api, client, globex, card_sku):
    api.order("A-1")
    other = SignedClient(client, globex)

    assert error_of(other.get(f"{API}/orders/A-1")) == (404, "not_found")
    assert error_of(other.get(f"{API}/orders/nope")) == (404, "not_found")


def test_two_partners_may_use_the_same_out_trade_no(api, client, globex, card_sku):
    mine = api.order("A-1").json()
    theirs = SignedClient(client, globex).order("A-1")

    assert theirs.status_code == 201
    assert theirs.json()["number"] != mine["number"]
    assert set(theirs.json()["codes"]).isdisjoint(mine["codes"])


def test_insufficient_balance_is_402_and_writes_nothing(api, acme, card_sku):
    codes_before = available(card_sku)

    response = api.order("A-1", quantity=4)  # 108.00 > 100.00

    assert error_of(response) == (402, "insufficient_balance")
    assert not Order.objects.exists()
    assert not PartnerOrder.objects.exists()
    assert available(card_sku) == codes_before
    assert balance_of(account_id=acme.account.pk) == Decimal("100.00")


def test_operator_tier_price_overrides_the_discount(api, acme, card_sku, partner_tier):
    TierPrice.objects.create(tier=partner_tier, sku=card_sku, price=Decimal("22.50"))

    assert api.order("A-1").json()["amount"] == "22.50"


def test_a_price_below_the_codes_cost_is_refused_and_rolled_back(
    api, acme, card_sku, partner_tier
):
    TierPrice.objects.create(tier=partner_tier, sku=card_sku, price=Decimal("19.99"))
    codes_before = available(card_sku)

    response = api.order("A-1")

    assert error_of(response) == (400, "below_cost")
    assert not Order.objects.exists()
    assert available(card_sku) == codes_before
    assert balance_of(account_id=acme.account.pk) == Decimal("100.00")


def test_out_of_stock_is_400_and_nothing_is_debited(api, acme, db):
    SkuFactory(code="EMPTY-SKU")

    response = api.order("A-1", sku="EMPTY-SKU")

    assert error_of(response) == (400, "out_of_stock")
    assert balance_of(account_id=acme.account.pk) == Decimal("100.00")


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (
            {"out_trade_no": "A-1", "sku": "NO-SUCH-SKU", "quantity": 1},
            "sku_unavailable",
        ),
        ({"out_trade_no": "A-1", "sku": "TX-VIP-MONTH", "quantity": 0}, "invalid"),
        ({"out_trade_no": "A-1", "sku": "TX-VIP-MONTH", "quantity": -1}, "invalid"),
        (
            {"out_trade_no": "A-1", "sku": "TX-VIP-MONTH", "quantity": 6},
            "invalid_quantity",
        ),
        ({"out_trade_no": "A-1", "sku": "TX-VIP-MONTH", "quantity": 10**40}, "invalid"),
        ({"out_trade_no": "A-1", "sku": "TX-VIP-MONTH", "quantity": 1.0}, "invalid"),
        ({"out_trade_no": "A-1", "sku": "TX-VIP-MONTH", "quantity": "1"}, "invalid"),
        ({"out_trade_no": "A-1", "sku": "TX-VIP-MONTH", "quantity": True}, "invalid"),
        ({"out_trade_no": "A-1", "sku": "TX-VIP-MONTH"}, "invalid"),
        ({"out_trade_no": "", "sku": "TX-VIP-MONTH", "quantity": 1}, "invalid"),
        ({"out_trade_no": "x" * 65, "sku": "TX-VIP-MONTH", "quantity": 1}, "invalid"),
        ({"out_trade_no": "A 1", "sku": "TX-VIP-MONTH", "quantity": 1}, "invalid"),
        ({"out_trade_no": "A-1", "sku": "tx-vip-month", "quantity": 1}, "invalid"),
        ({"out_trade_no": 5, "sku": "TX-VIP-MONTH", "quantity": 1}, "invalid"),
        ([1, 2], "invalid"),
        ("text", "invalid"),
        (None, "invalid"),
    ],
)
def test_bad_order_input_is_400_and_writes_nothing(api, acme, card_sku, payload, code):
    response = api.post(f"{API}/orders", payload)

    assert error_of(response) == (400, code)
    assert not Order.objects.exists()
    assert balance_of(account_id=acme.account.pk) == Decimal("100.00")


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"",
        b'{"out_trade_no": "A-1", "sku": "TX-VIP-MONTH", "quantity": 1'
        + b"1" * 5000
        + b"}",
        b'{"out_trade_no": "A-1", "sku": "TX-VIP-MONTH", "quantity": 1e999}',
        b'{"out_trade_no": "A-1", "sku": "TX-VIP-MONTH", "quantity": NaN}',
        b'{"out_trade_no": "A-1\x00", "sku": "TX-VIP-MONTH", "quantity": 1}',
        b"\xff\xfe",
    ],
)
def test_unparsable_body_is_400(api, card_sku, raw):
    response = api.post(f"{API}/orders", raw=raw)

    assert error_of(response)[0] == 400
    assert not Order.objects.exists()


@pytest.mark.parametrize("field", ["out_trade_no", "recharge_account"])
def test_nul_escaped_in_json_is_400_not_a_signature_error(api, card_sku, field):
    payload = {
        "out_trade_no": "A-1",
        "sku": "TX-VIP-MONTH",
        "quantity": 1,
        field: "A\u0000B",
    }

    response = api.post(f"{API}/orders", raw=json.dumps(payload).encode())

    assert error_of(response) == (400, "invalid")
    assert not Order.objects.exists()


def test_nul_in_the_order_path_is_a_json_404(api, card_sku):
    response = api.get(f"{API}/orders/A%00B")

    assert error_of(response) == (404, "not_found")


def test_refund_of_a_partner_order_credits_the_balance_back(
    api, acme, card_sku, django_capture_on_commit_callbacks
):
    from orders.services import refund_request

    body = api.order("A-1", quantity=2).json()
    order = Order.objects.get(number=body["number"])
    line = order.lines.get()

    with django_capture_on_commit_callbacks(execute=True):
        refund_request(
            order=order, lines=[(line, Decimal("27.00"))], reason="one code was bad"
        )

    refund_entry = PartnerBalanceEntry.objects.get(kind="refund")
    assert refund_entry.amount == Decimal("27.00")
    assert refund_entry.order_id == order.pk
    assert balance_of(account_id=acme.account.pk) == Decimal("73.00")
    assert api.get(f"{API}/orders/A-1").json()["status"] == "partially_refunded"


def test_products_are_listed_at_the_partners_price(api, card_sku, partner_tier):
    SkuFactory(code="OTHER-SKU", price=Decimal("10.00"))
    TierPrice.objects.create(
        tier=partner_tier, sku=SkuFactory(code="PRICED-SKU"), price=Decimal("7.77")
    )
    stock_codes(card_sku, 1)

    response = api.get(f"{API}/products")

    assert response.status_code == 200
    found = {p["sku"]: p for p in response.json()["products"]}
    assert found["TX-VIP-MONTH"]["price"] == str(TIER_PRICE)
    assert found["TX-VIP-MONTH"]["in_stock"] is True
    assert found["TX-VIP-MONTH"]["account_rule"] is None
    assert found["TX-VIP-MONTH"]["delivery"] == "card_code"
    assert found["OTHER-SKU"]["price"] == "9.00"
    assert found["OTHER-SKU"]["in_stock"] is False
    assert found["PRICED-SKU"]["price"] == "7.77"
