"""Query budgets of the shopper's pages: contracts (issue 6). Raising one needs a
reason in a note. The paid path's own budgets (checkout POST, pay page, notify)
are in tests/orders/test_query_budgets.py.

"Warm" is the flash-sale case: the same page asked again while the catalog has
not changed and the stock cache is fresh. Sessions are `cached_db`: a session
already read once costs no query.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from orders.models import Order
from orders.services import order_place
from tests.factories.catalog import BundleItemFactory, ProductFactory, SkuFactory
from tests.factories.fulfillment import stock_codes

pytestmark = pytest.mark.django_db

HOME_COLD, HOME_WARM = 3, 0
PRODUCT_COLD, PRODUCT_WARM = 5, 0
CHECKOUT_PAGE = 3  # the user; the SKU and its stock, once (cached after)
CHECKOUT_PAGE_WARM = 1  # the user
SOLD_OUT_POST = 0  # flag and this click's token: cache reads; the account is not loaded
ORDER_LIST = 4  # user, count, orders, their lines
ORDER_PAGE = 5  # user, order, lines (+ top-ups), codes, bundle parts' codes


@pytest.fixture
def shop():
    product = ProductFactory(name="腾讯视频 VIP", slug="tx-vip")
    month = SkuFactory(product=product, code="TX-M", name="月卡")
    gone = SkuFactory(product=product, code="TX-GONE", name="秒杀月卡")
    music = SkuFactory(code="NE-M")
    bundle = SkuFactory(product=product, code="TX-NE", delivery="bundle")
    BundleItemFactory(bundle=bundle, component=month)
    BundleItemFactory(bundle=bundle, component=music)
    stock_codes(month, 5)
    stock_codes(music, 5)
    stock_codes(gone, 1)
    return product


def test_home(client, shop, django_assert_max_num_queries):
    with django_assert_max_num_queries(HOME_COLD):
        assert client.get("/").status_code == 200
    with django_assert_max_num_queries(HOME_WARM):
        assert "腾讯视频 VIP" in client.get("/").content.decode()


def test_product_page(client, shop, django_assert_max_num_queries):
    url = reverse("storefront:product-detail", args=["tx-vip"])
    with django_assert_max_num_queries(PRODUCT_COLD):
        assert client.get(url).status_code == 200
    with django_assert_max_num_queries(PRODUCT_WARM):
        assert "月卡" in client.get(url).content.decode()


def test_checkout_page(alice_client, shop, django_assert_max_num_queries):
    url = reverse("orders:checkout") + "?sku=TX-M&quantity=1"
    with django_assert_max_num_queries(CHECKOUT_PAGE):
        assert alice_client.get(url).status_code == 200
    with django_assert_max_num_queries(CHECKOUT_PAGE_WARM):
        assert "提交订单并支付" in alice_client.get(url).content.decode()


def test_sold_out_checkout_post(
    alice_client, alice, shop, settings, django_assert_max_num_queries
):
    settings.ORDER_MAX_UNPAID_PER_USER = 10
    order_place(user=alice, sku_code="TX-GONE", quantity=1, client_token="first")
    alice_client.post(  # the first buyer to find nothing raises the flag
        reverse("orders:checkout"), {"sku": "TX-GONE", "quantity": 1, "token": "t1"}
    )

    with django_assert_max_num_queries(SOLD_OUT_POST):
        response = alice_client.post(
            reverse("orders:checkout"), {"sku": "TX-GONE", "quantity": 1, "token": "t2"}
        )

    assert response.status_code == 409
    assert "已售罄" in response.content.decode()
    assert Order.objects.count() == 1


def test_order_list(alice_client, alice, shop, django_assert_max_num_queries):
    for n in range(3):
        order_place(user=alice, sku_code="TX-M", quantity=1, client_token=f"t{n}")
    alice_client.get("/")
    with django_assert_max_num_queries(ORDER_LIST):
        assert alice_client.get(reverse("orders:order-list")).status_code == 200


def test_order_page(alice_client, alice, shop, django_assert_max_num_queries):
    order = order_place(user=alice, sku_code="TX-NE", quantity=1)
    alice_client.get("/")
    with django_assert_max_num_queries(ORDER_PAGE):
        response = alice_client.get(reverse("orders:order-detail", args=[order.number]))
    assert response.status_code == 200
