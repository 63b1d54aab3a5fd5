from __future__ import annotations

import pytest
from django.urls import reverse

from fulfillment.models import CardCode, CodeAccessLog
from orders.models import Order, OrderEvent, SandboxTrade
from orders.services import order_place
from tests.conftest import signed_notify
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes

pytestmark = pytest.mark.django_db


@pytest.fixture
def sku():
    sku = SkuFactory(code="TX-VIP-MONTH", product__slug="tx-vip")
    stock_codes(sku, ["TXCODE000001", "TXCODE000002", "TXCODE000003"])
    return sku


def _delivered_order(client, user, quantity=1):
    order = order_place(user=user, sku_code="TX-VIP-MONTH", quantity=quantity)
    client.post(
        reverse("orders:payment-notify", args=["sandbox"]),
        signed_notify(order, trade_no=order.number),
    )
    order.refresh_from_db()
    assert order.status == Order.Status.DELIVERED
    return order


def test_checkout_requires_login(client, sku):
    response = client.get(
        reverse("orders:checkout"), {"sku": "TX-VIP-MONTH", "quantity": 1}
    )

    assert response.status_code == 302
    assert reverse("account_login") in response["Location"]


def test_checkout_get_shows_summary_without_creating_anything(alice_client, sku):
    response = alice_client.get(
        reverse("orders:checkout"), {"sku": "TX-VIP-MONTH", "quantity": 2}
    )

    assert response.status_code == 200
    assert "50.00" in response.content.decode()
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    ("quantity", "message"), [(4, "库存不足"), (6, "购买数量须在 1 到 5 之间")]
)
def test_checkout_get_refuses_what_post_would_refuse(
    alice_client, sku, quantity, message
):
    response = alice_client.get(
        reverse("orders:checkout"), {"sku": "TX-VIP-MONTH", "quantity": quantity}
    )

    assert message in response.content.decode()
    assert not Order.objects.exists()


def test_checkout_post_places_order_and_redirects_to_sandbox_pay(alice_client, sku):
    response = alice_client.post(
        reverse("orders:checkout"),
        {"sku": "TX-VIP-MONTH", "quantity": 1, "token": "t-1"},
    )

    order = Order.objects.get()
    trade = SandboxTrade.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("orders:sandbox-pay", args=[trade.token])
    assert (trade.out_trade_no, trade.total_amount) == (
        order.number,
        order.total_amount,
    )


def test_checkout_double_submit_creates_one_order(alice_client, sku):
    data = {"sku": "TX-VIP-MONTH", "quantity": 1, "token": "same"}

    first = alice_client.post(reverse("orders:checkout"), data)
    second = alice_client.post(reverse("orders:checkout"), data)

    assert Order.objects.count() == 1
    assert SandboxTrade.objects.count() == 1
    assert first["Location"] == second["Location"]


def test_checkout_sold_out_shows_message_on_the_page_and_creates_nothing(
    alice_client, sku
):
    response = alice_client.post(
        reverse("orders:checkout"),
        {"sku": "TX-VIP-MONTH", "quantity": 4, "token": "x"},
    )

    assert response.status_code == 409
    assert "库存不足" in response.content.decode()
    assert 'role="alert"' in response.content.decode()
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sku": "TX-VIP-MONTH", "quantity": "abc"}, "请输入有效的数量"),
        ({"sku": "TX-VIP-MONTH", "quantity": 0}, "数量至少为 1"),
        ({"sku": "TX-VIP-MONTH", "quantity": 6}, "购买数量须在 1 到 5 之间"),
        ({"sku": "NOPE", "quantity": 1}, "该商品当前不在售"),
    ],
)
def test_checkout_bad_input_gets_specific_message(alice_client, sku, data, message):
    response = alice_client.post(
        reverse("orders:checkout"), {**data, "token": "t"}, follow=True
    )

    assert message in response.content.decode()
    assert not Order.objects.exists()


def test_order_detail_is_404_for_another_user(client, mallory, alice, sku):
    order = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)
    client.force_login(mallory)

    assert (
        client.get(reverse("orders:order-detail", args=[order.number])).status_code
        == 404
    )
    assert (
        client.post(reverse("orders:order-pay", args=[order.number])).status_code == 404
    )


def test_order_detail_masks_codes_until_revealed(alice_client, alice, sku):
    order = _delivered_order(alice_client, alice)

    page = alice_client.get(
        reverse("orders:order-detail", args=[order.number])
    ).content.decode()

    code = order.lines.get().codes.get()
    assert code.hint in page
    assert "TXCODE00000" not in page


def test_code_reveal_returns_code_and_audits(alice_client, alice, sku):
    order = _delivered_order(alice_client, alice)
    code = order.lines.get().codes.get()

    response = alice_client.post(
        reverse("orders:code-reveal", args=[order.number, code.id]),
        HTTP_ACCEPT="application/json",
    )

    assert response.status_code == 200
    assert response.json()["code"].startswith("TXCODE00000")
    assert "no-store" in response["Cache-Control"]
    log = CodeAccessLog.objects.get()
    assert (log.code, log.actor, log.action) == (code, alice, "revealed_by_buyer")
    assert order.events.filter(kind=OrderEvent.Kind.CODE_REVEALED).count() == 1


def test_code_reveal_without_js_renders_page_with_code(alice_client, alice, sku):
    order = _delivered_order(alice_client, alice)
    code = order.lines.get().codes.get()

    response = alice_client.post(
        reverse("orders:code-reveal", args=[order.number, code.id])
    )

    assert response.status_code == 200
    assert "TXCODE00000" in response.content.decode()


def test_code_reveal_refused_for_pending_order(alice_client, alice, sku):
    order = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)
    code = CardCode.objects.get(order_line__order=order)

    response = alice_client.post(
        reverse("orders:code-reveal", args=[order.number, code.id]),
        HTTP_ACCEPT="application/json",
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "reveal_error"
    assert not CodeAccessLog.objects.exists()


def test_code_reveal_refused_for_code_of_another_order(alice_client, alice, sku):
    order = _delivered_order(alice_client, alice)
    other = _delivered_order(alice_client, alice)
    foreign = other.lines.get().codes.get()

    response = alice_client.post(
        reverse("orders:code-reveal", args=[order.number, foreign.id]),
        HTTP_ACCEPT="application/json",
    )

    assert response.status_code == 400
    assert not CodeAccessLog.objects.exists()


def test_code_reveal_is_404_for_another_user(client, alice, mallory, sku):
    client.force_login(alice)
    order = _delivered_order(client, alice)
    code = order.lines.get().codes.get()
    client.force_login(mallory)

    response = client.post(reverse("orders:code-reveal", args=[order.number, code.id]))

    assert response.status_code == 404
    assert not CodeAccessLog.objects.exists()


def test_code_reveal_json_404_for_another_users_order(client, alice, mallory, sku):
    client.force_login(alice)
    order = _delivered_order(client, alice)
    code = order.lines.get().codes.get()
    client.force_login(mallory)

    response = client.post(
        reverse("orders:code-reveal", args=[order.number, code.id]),
        HTTP_ACCEPT="application/json",
    )

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert not CodeAccessLog.objects.exists()


def test_code_reveal_rejects_get(alice_client, alice, sku):
    order = _delivered_order(alice_client, alice)
    code = order.lines.get().codes.get()

    assert (
        alice_client.get(
            reverse("orders:code-reveal", args=[order.number, code.id])
        ).status_code
        == 405
    )


def test_order_list_shows_only_own_orders(alice_client, alice, mallory, sku):
    mine = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)
    theirs = order_place(user=mallory, sku_code="TX-VIP-MONTH", quantity=1)

    page = alice_client.get(reverse("orders:order-list")).content.decode()

    assert mine.number in page
    assert theirs.number not in page


def test_order_list_paginates(alice_client, alice, sku, settings):
    settings.ORDER_MAX_UNPAID_PER_USER = 100
    stock_codes(sku, 30)
    for _ in range(23):
        order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)

    first = alice_client.get(reverse("orders:order-list"))
    second = alice_client.get(reverse("orders:order-list"), {"page": 2})

    assert len(first.context["orders"]) == 20
    assert len(second.context["orders"]) == 3


def test_sandbox_pay_page_shows_trade_and_unknown_token_is_404(alice_client, sku):
    response = alice_client.post(
        reverse("orders:checkout"), {"sku": "TX-VIP-MONTH", "quantity": 1, "token": "t"}
    )
    trade = SandboxTrade.objects.get()

    page = alice_client.get(response["Location"]).content.decode()

    assert trade.out_trade_no in page
    assert (
        alice_client.get(reverse("orders:sandbox-pay", args=["nope"])).status_code
        == 404
    )


def test_sandbox_pay_rejects_unknown_action(alice_client, sku):
    alice_client.post(
        reverse("orders:checkout"), {"sku": "TX-VIP-MONTH", "quantity": 1, "token": "t"}
    )
    trade = SandboxTrade.objects.get()

    response = alice_client.post(
        reverse("orders:sandbox-pay", args=[trade.token]), {"action": "steal"}
    )

    assert response.status_code == 400
    trade.refresh_from_db()
    assert trade.status == SandboxTrade.Status.WAITING


def test_order_pay_reopens_gateway_page_for_pending_order(alice_client, alice, sku):
    order = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)

    first = alice_client.post(reverse("orders:order-pay", args=[order.number]))
    second = alice_client.post(reverse("orders:order-pay", args=[order.number]))

    assert first["Location"] == second["Location"]
    assert SandboxTrade.objects.count() == 1
