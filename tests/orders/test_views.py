from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from catalog.models import Platform, Sku
from fulfillment.models import (
    CardCode,
    CodeAccessLog,
    Supplier,
    SupplierProduct,
    TopUp,
)
from fulfillment.services.topups import REASON_BAD_ACCOUNT
from orders.models import Order, OrderEvent, OrderLine, SandboxTrade
from orders.services import order_place
from orders.services.lines import order_line_topup_delivered, order_line_topup_failed
from tests.conftest import signed_notify
from tests.factories.catalog import (
    BundleItemFactory,
    PlatformFactory,
    ProductFactory,
    SkuFactory,
)
from tests.factories.fulfillment import (
    attempt_make,
    mapping_make,
    stock_codes,
    supplier_make,
    supplier_ready,
)

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


def test_checkout_without_login_asks_for_email_and_lookup_password(client, sku):
    response = client.get(
        reverse("orders:checkout"), {"sku": "TX-VIP-MONTH", "quantity": 1}
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="email"' in page
    assert 'name="lookup_password"' in page
    assert 'name="lookup_password2"' in page
    assert reverse("account_login") in page  # or log in first


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


# --- The order page: each line's progress, top-ups and bundles ---------------------


@pytest.fixture
def qq_topup():
    platform = PlatformFactory(
        name="腾讯视频", slug="tencent", account_rule=Platform.AccountRule.QQ
    )
    sku = SkuFactory(
        product=ProductFactory(platform=platform, name="腾讯视频 VIP 直充"),
        code="TX-DIRECT",
        name="月卡直充",
        delivery=Sku.Delivery.DIRECT_TOPUP,
        price=Decimal("28.00"),
        face_value=Decimal("30.00"),
    )
    # A supplier that can take it: checkout sells top-ups only then.
    supplier_ready(mapping_make(sku, supplier_make("sim"), "P-TX", cost="20.00"))
    return sku


@pytest.fixture
def bundle(qq_topup):
    """A 45.00 bundle of a card code and the QQ top-up, shares 2:1."""
    card = SkuFactory(code="NE-CARD", name="黑胶月卡", face_value=Decimal("30.00"))
    stock_codes(card, 3)
    bundle = SkuFactory(
        code="BUNDLE-1",
        name="联合会员包",
        delivery=Sku.Delivery.BUNDLE,
        price=Decimal("45.00"),
    )
    BundleItemFactory(bundle=bundle, component=card, share=Decimal("2"))
    BundleItemFactory(bundle=bundle, component=qq_topup, share=Decimal("1"))
    return bundle


@pytest.fixture
def mapping(qq_topup):
    return SupplierProduct.objects.get(sku=qq_topup)


def _paid(client, user, sku_code, *, account="", trade_no="T1"):
    """A placed and paid order; top-ups stay where payment leaves them (not started)."""
    order = order_place(
        user=user, sku_code=sku_code, quantity=1, recharge_account=account
    )
    # The worker's first step is an on-commit callback: never run here.
    client.post(
        reverse("orders:payment-notify", args=["sandbox"]),
        signed_notify(order, trade_no=trade_no),
    )
    return Order.objects.get(pk=order.pk)


def _page(client, order, **headers):
    return client.get(reverse("orders:order-detail", args=[order.number]), **headers)


def _text(response):
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


def _topup_line(order):
    return order.lines.get(delivery=Sku.Delivery.DIRECT_TOPUP)


# User, order, lines (each with its top-up and whether it is placed), codes; the
# session comes from the cache (cached_db).
ORDER_PAGE_QUERIES = 4


def test_order_page_with_every_kind_of_line_stays_in_fixed_queries(
    alice_client, alice, sku, bundle, django_assert_max_num_queries
):
    single = _delivered_order(alice_client, alice)
    order = _paid(alice_client, alice, "TX-VIP-MONTH", trade_no="T2")
    topup = _paid(alice_client, alice, "TX-DIRECT", account="12345678", trade_no="T3")
    both = _paid(alice_client, alice, "BUNDLE-1", account="12345678", trade_no="T4")
    # One order holding a card line, a top-up line and a bundle (card + top-up).
    OrderLine.objects.filter(order__in=[topup, both]).update(order=order)
    Order.objects.filter(pk=order.pk).update(status=Order.Status.FULFILLING)
    with CaptureQueriesContext(connection) as one_line:
        _page(alice_client, single)

    with django_assert_max_num_queries(ORDER_PAGE_QUERIES):
        response = _page(alice_client, order)

    assert len(one_line) == ORDER_PAGE_QUERIES  # the same for one line or many

    assert len(response.context["lines"]) == 3
    progress = [
        leaf.progress for view in response.context["lines"] for leaf in view.leaves
    ]
    # the card line, the top-up line (not yet with a supplier), the bundle's two parts
    assert progress == ["delivered", "submitted", "delivered", "submitted"]
    page = response.content.decode()
    assert page.count("line-status--submitted") == 2
    assert page.count("line-status--delivered") == 2
    text = _text(response)
    assert "分摊 ¥30.00" in text
    assert "分摊 ¥15.00" in text


@pytest.mark.parametrize(
    ("topup_status", "placements", "badge"),
    [
        (TopUp.Status.PENDING, 0, "已提交"),
        (TopUp.Status.WORKING, 0, "已提交"),  # the attempt is not out yet
        (TopUp.Status.WORKING, 1, "充值中"),
        (TopUp.Status.WAITING, 1, "充值中"),
    ],
)
def test_order_page_topup_in_flight_shows_its_progress_and_polls(
    alice_client, alice, qq_topup, mapping, topup_status, placements, badge
):
    order = _paid(alice_client, alice, "TX-DIRECT", account="12345678")
    topup = TopUp.objects.get()
    TopUp.objects.filter(pk=topup.pk).update(status=topup_status)
    if placements:
        attempt_make(topup, mapping, status="unknown", placements=placements)

    response = _page(alice_client, order)

    page = response.content.decode()
    assert re.search(
        rf'line-status--\w+">\s*<span class="spinner[^>]*></span>\s*{badge}', page
    )
    assert "12345678" in page
    poll = reverse("orders:order-detail", args=[order.number])
    assert f'data-poll="{poll}"' in page


def test_order_page_topup_credited_stops_polling(
    alice_client, alice, qq_topup, mapping
):
    order = _paid(alice_client, alice, "TX-DIRECT", account="12345678")
    line = _topup_line(order)
    TopUp.objects.update(status=TopUp.Status.SUCCEEDED)
    with transaction.atomic():
        order_line_topup_delivered(line_id=line.id, now=timezone.now())

    response = _page(alice_client, order)

    text = _text(response)
    assert "已到账" in text
    assert "已充值到您填写的账号" in text
    assert "data-poll" not in response.content.decode()


def test_order_page_refunded_topup_shows_reason_and_amount(
    alice_client, alice, qq_topup
):
    order = _paid(alice_client, alice, "TX-DIRECT", account="12345678")
    line = _topup_line(order)
    TopUp.objects.update(status=TopUp.Status.FAILED)
    with transaction.atomic():
        order_line_topup_failed(
            line_id=line.id, reason=str(REASON_BAD_ACCOUNT), now=timezone.now()
        )

    response = _page(alice_client, order)
    english = _page(alice_client, order, HTTP_ACCEPT_LANGUAGE="en")

    text = _text(response)
    assert "已退款" in text
    assert "已退回 ¥28.00：充值账号无效，充值渠道拒绝了这笔充值" in text
    assert "data-poll" not in response.content.decode()
    # the stored reason is shown in the page's language
    assert "¥28.00 refunded: Invalid recharge account" in _text(english)
    assert "充值账号无效" not in english.content.decode()


def test_order_page_bundle_says_what_was_delivered_and_what_came_back(
    alice_client, alice, bundle
):
    order = _paid(alice_client, alice, "BUNDLE-1", account="12345678")
    with transaction.atomic():
        order_line_topup_failed(
            line_id=_topup_line(order).id,
            reason=str(REASON_BAD_ACCOUNT),
            now=timezone.now(),
        )

    response = _page(alice_client, order)

    (view,) = response.context["lines"]
    assert [leaf.progress for leaf in view.parts] == ["delivered", "refunded"]
    text = _text(response)
    assert "部分退款" in text
    assert "分别发放、分别使用" in text
    assert "已退回 ¥15.00：充值账号无效" in text
    assert "显示卡密" in text


def test_code_reveal_without_js_keeps_polling_the_order_page(
    alice_client, alice, bundle
):
    order = _paid(alice_client, alice, "BUNDLE-1", account="12345678")
    code = CardCode.objects.get(order_line__order=order, status=CardCode.Status.SOLD)

    response = alice_client.post(
        reverse("orders:code-reveal", args=[order.number, code.id])
    )

    page = response.content.decode()
    # never the reveal URL: polling a POST-only URL would only get 405s
    poll = reverse("orders:order-detail", args=[order.number])
    assert f'data-poll="{poll}"' in page
    assert f'data-code-id="{code.id}"' in page
    assert "is-revealed" in page


@pytest.mark.parametrize(
    ("sku_code", "account", "message"),
    [
        ("TX-DIRECT", "12ab", "充值账号格式不正确：腾讯视频需要5–12 位数字的 QQ 号"),
        ("TX-DIRECT", "", "请填写要充值的腾讯视频账号"),
        ("BUNDLE-1", "0123", "充值账号格式不正确：腾讯视频需要5–12 位数字的 QQ 号"),
    ],
)
def test_checkout_bad_account_comes_back_at_its_field_as_typed(
    alice_client, bundle, sku_code, account, message
):
    response = alice_client.post(
        reverse("orders:checkout"),
        {"sku": sku_code, "quantity": 1, "token": "t", "recharge_account": account},
    )

    assert response.status_code == 400
    page = response.content.decode()
    field = re.search(r'<input type="text"\s+name="recharge_account"[^>]*>', page)
    assert field is not None
    tag = field.group(0)
    assert f'value="{account}"' in tag
    assert 'aria-invalid="true"' in tag
    assert "autofocus" in tag
    assert 'inputmode="numeric"' in tag
    assert 'aria-describedby="recharge_account-errors recharge_account-help"' in tag
    errors = re.search(r'id="recharge_account-errors">(.*?)</ul>', page, re.S)
    assert errors is not None
    assert message in errors.group(1)
    assert not Order.objects.exists()


def test_checkout_get_asks_for_the_account_without_an_error(
    alice_client, bundle, mapping
):
    # The supplier reports the product on and can pay for it: the bundle can sell.
    SupplierProduct.objects.update(supplier_status=SupplierProduct.SupplierStatus.ON)
    Supplier.objects.update(last_balance=Decimal("100.00"))

    response = alice_client.get(
        reverse("orders:checkout"), {"sku": "BUNDLE-1", "quantity": 1}
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert '<label class="field-label" for="id_recharge_account">' in page
    assert "充值到的腾讯视频账号" in page
    assert "aria-invalid" not in page
    assert "recharge_account-errors" not in page
    assert "分别发放、分别使用" in page
