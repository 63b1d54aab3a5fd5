"""Orders whose lines live their own lives: kinds, bundles, accounts, tokens, states."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import translation

from catalog.models import Platform, Sku
from fulfillment.models import CardCode
from orders.models import Order, OrderLine
from orders.pricing import QuoteError, order_quote
from orders.services import (
    CheckoutTokenReusedError,
    order_cancel,
    order_place,
)
from orders.transitions import (
    IllegalTransitionError,
    lines_move,
    order_move,
    settled_status,
)
from tests.factories.catalog import (
    BundleItemFactory,
    PlatformFactory,
    ProductFactory,
    SkuFactory,
)
from tests.factories.fulfillment import (
    available,
    mapping_make,
    stock_codes,
    supplier_make,
    supplier_ready,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def qq_topup():
    platform = PlatformFactory(
        name="腾讯视频", slug="tencent", account_rule=Platform.AccountRule.QQ
    )
    sku = SkuFactory(
        product=ProductFactory(platform=platform),
        code="TX-DIRECT",
        delivery=Sku.Delivery.DIRECT_TOPUP,
        price=Decimal("28.00"),
        face_value=Decimal("30.00"),
    )
    supplier_ready(mapping_make(sku, supplier_make("sim"), "P-TX", cost="24.00"))
    return sku


@pytest.fixture
def bundle(qq_topup):
    """A 45.00 bundle: a 30.00-face card code and a 30.00-face top-up, shares 2:1."""
    card = SkuFactory(code="NE-CARD", face_value=Decimal("30.00"))
    stock_codes(card, 3)
    bundle = SkuFactory(
        code="BUNDLE-1", delivery=Sku.Delivery.BUNDLE, price=Decimal("45.00")
    )
    BundleItemFactory(bundle=bundle, component=card, share=Decimal("2"))
    BundleItemFactory(bundle=bundle, component=qq_topup, share=Decimal("1"))
    return bundle


def test_order_place_topup_line_snapshots_kind_and_account(alice, qq_topup):
    order = order_place(
        user=alice, sku_code="TX-DIRECT", quantity=1, recharge_account=" 12345678 "
    )

    line = order.lines.get()
    assert line.delivery == Sku.Delivery.DIRECT_TOPUP
    assert line.recharge_account == "12345678"
    assert line.status == OrderLine.Status.RESERVED
    assert order.total_amount == Decimal("28.00")


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_order_place_snapshots_the_validity_in_the_shop_language(alice, language):
    sku = SkuFactory(code="VALID-31")
    stock_codes(sku, 1)
    with translation.override("zh-hans"):
        shop_text = sku.validity_text
    with translation.override("en"):
        english_text = sku.validity_text

    with translation.override(language):
        order = order_place(user=alice, sku_code="VALID-31", quantity=1)
        after = translation.get_language()

    assert shop_text != english_text
    assert order.lines.get().validity_text == shop_text
    assert after == language  # the shopper's language, left as it was


@pytest.mark.parametrize(
    ("account", "message"),
    [
        ("", "请填写要充值的腾讯视频账号"),
        ("abc", "充值账号格式不正确：腾讯视频需要5–12 位数字的 QQ 号"),
    ],
)
def test_order_place_refuses_bad_recharge_account_at_its_field(
    alice, qq_topup, account, message
):
    with pytest.raises(QuoteError) as exc:
        order_place(
            user=alice, sku_code="TX-DIRECT", quantity=1, recharge_account=account
        )

    assert exc.value.field == "recharge_account"
    assert message in exc.value.message
    assert not Order.objects.exists()


def test_order_place_bundle_splits_price_by_shares_and_reserves_codes(alice, bundle):
    order = order_place(
        user=alice, sku_code="BUNDLE-1", quantity=2, recharge_account="12345678"
    )

    parent = order.lines.get(parent__isnull=True)
    card, topup = parent.components.order_by("id")
    assert order.total_amount == parent.amount == Decimal("90.00")
    assert (card.amount, topup.amount) == (Decimal("60.00"), Decimal("30.00"))
    assert (card.quantity, topup.quantity) == (2, 2)
    assert topup.recharge_account == "12345678"
    assert card.recharge_account == ""
    assert card.codes.filter(status=CardCode.Status.RESERVED).count() == 2


def test_order_quote_bundle_without_shares_splits_by_face_value_to_the_fen(
    qq_topup,
):
    a = SkuFactory(face_value=Decimal("10.00"))
    b = SkuFactory(face_value=Decimal("10.00"))
    c = SkuFactory(face_value=Decimal("10.00"))
    bundle = SkuFactory(delivery=Sku.Delivery.BUNDLE, price=Decimal("10.00"))
    for part in (a, b, c):
        BundleItemFactory(bundle=bundle, component=part)

    quote = order_quote(sku=bundle, quantity=1)

    assert [x.amount for x in quote.leaves] == [
        Decimal("3.34"),
        Decimal("3.33"),
        Decimal("3.33"),
    ]
    assert sum(x.amount for x in quote.leaves) == quote.total


def test_order_place_bundle_out_of_codes_creates_nothing(alice, bundle):
    card = Sku.objects.get(code="NE-CARD")

    with pytest.raises(Exception, match="库存不足"):
        order_place(
            user=alice, sku_code="BUNDLE-1", quantity=4, recharge_account="12345678"
        )

    assert not Order.objects.exists()
    assert available(card) == 3


def test_order_place_same_token_same_request_returns_the_same_order(alice, qq_topup):
    first = order_place(
        user=alice,
        sku_code="TX-DIRECT",
        quantity=1,
        recharge_account="12345678",
        client_token="tok",
    )
    again = order_place(
        user=alice,
        sku_code="TX-DIRECT",
        quantity=1,
        recharge_account="12345678",
        client_token="tok",
    )

    assert again.pk == first.pk
    assert Order.objects.count() == 1


@pytest.mark.parametrize(
    "change",
    [{"quantity": 2}, {"recharge_account": "87654321"}, {"sku_code": "OTHER"}],
)
def test_order_place_same_token_different_request_is_refused(alice, qq_topup, change):
    SkuFactory(code="OTHER", product=qq_topup.product)
    stock_codes(Sku.objects.get(code="OTHER"), 2)
    order_place(
        user=alice,
        sku_code="TX-DIRECT",
        quantity=1,
        recharge_account="12345678",
        client_token="tok",
    )
    request = {
        "sku_code": "TX-DIRECT",
        "quantity": 1,
        "recharge_account": "12345678",
        **change,
    }

    with pytest.raises(CheckoutTokenReusedError, match="已经提交过另一笔订单"):
        order_place(user=alice, client_token="tok", **request)

    assert Order.objects.count() == 1


def test_order_cancel_cancels_every_line_and_releases_codes(alice, bundle):
    order = order_place(
        user=alice, sku_code="BUNDLE-1", quantity=1, recharge_account="12345678"
    )

    assert order_cancel(order_id=order.id, reason="test") is True

    assert set(order.lines.values_list("status", flat=True)) == {"cancelled"}
    assert available(Sku.objects.get(code="NE-CARD")) == 3


def test_order_move_refuses_an_illegal_transition(alice, qq_topup):
    order = order_place(
        user=alice, sku_code="TX-DIRECT", quantity=1, recharge_account="12345678"
    )

    with pytest.raises(IllegalTransitionError):
        order_move(order, Order.Status.DELIVERED)

    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_order_move_through_paid_checks_every_step_and_writes_once(
    alice, qq_topup, django_assert_num_queries
):
    order = order_place(
        user=alice, sku_code="TX-DIRECT", quantity=1, recharge_account="12345678"
    )

    with django_assert_num_queries(1):
        order_move(
            order,
            Order.Status.FULFILLING,
            via=(Order.Status.PAID,),
            paid_amount=order.total_amount,
        )

    order.refresh_from_db()
    assert (order.status, order.paid_amount) == ("fulfilling", order.total_amount)


def test_order_move_refuses_an_illegal_step_on_the_way(alice, qq_topup):
    order = order_place(
        user=alice, sku_code="TX-DIRECT", quantity=1, recharge_account="12345678"
    )

    with pytest.raises(IllegalTransitionError):
        # pending → cancelled is allowed, cancelled → delivered is not
        order_move(order, Order.Status.DELIVERED, via=(Order.Status.CANCELLED,))

    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_order_move_refuses_a_stale_copy(alice, qq_topup):
    order = order_place(
        user=alice, sku_code="TX-DIRECT", quantity=1, recharge_account="12345678"
    )
    stale = Order.objects.get(pk=order.pk)
    order_move(order, Order.Status.CANCELLED)

    with pytest.raises(IllegalTransitionError):
        order_move(stale, Order.Status.PAID)


def test_lines_move_refuses_delivered_back_to_delivering(alice, qq_topup):
    order = order_place(
        user=alice, sku_code="TX-DIRECT", quantity=1, recharge_account="12345678"
    )
    line = order.lines.get()
    lines_move([line], OrderLine.Status.DELIVERING)

    with pytest.raises(IllegalTransitionError):
        lines_move([line], OrderLine.Status.RESERVED)


@pytest.mark.parametrize(
    ("states", "refunded", "expected"),
    [
        (["delivered", "delivered"], ["0", "0"], "delivered"),
        (["delivered", "refunded"], ["0", "10"], "partially_refunded"),
        (["refunded", "refunded"], ["10", "10"], "refunded"),
        (["delivered", "delivering"], ["0", "0"], None),
        (["delivered", "cancelled"], ["0", "0"], None),
        (["delivered", "delivered"], ["5", "0"], "partially_refunded"),
    ],
)
def test_settled_status_follows_the_lines(states, refunded, expected):
    lines = [
        OrderLine(
            status=s,
            refunded_amount=Decimal(r),
            amount=Decimal("10"),
            delivery="card_code",
        )
        for s, r in zip(states, refunded, strict=True)
    ]

    assert settled_status(lines) == expected


def test_order_place_refuses_a_topup_no_supplier_can_take(alice, qq_topup):
    from fulfillment.models import Supplier
    from orders.services import SkuUnavailableError

    Supplier.objects.update(is_enabled=False)

    with pytest.raises(SkuUnavailableError, match="充值渠道暂时无法充值"):
        order_place(
            user=alice, sku_code="TX-DIRECT", quantity=1, recharge_account="12345678"
        )

    assert not Order.objects.exists()
