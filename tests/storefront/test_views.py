from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from fulfillment.availability import stock_state
from tests.factories.catalog import PlatformFactory, ProductFactory, SkuFactory
from tests.factories.fulfillment import stock_codes

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog():
    platform = PlatformFactory(name="腾讯视频", slug="tencent")
    product = ProductFactory(platform=platform, name="腾讯视频 VIP", slug="tx-vip")
    month = SkuFactory(product=product, code="TX-M", name="月卡", low_stock_threshold=3)
    year = SkuFactory(product=product, code="TX-Y", name="年卡", low_stock_threshold=3)
    quarter = SkuFactory(
        product=product, code="TX-Q", name="季卡", low_stock_threshold=3
    )
    stock_codes(month, 10)
    stock_codes(year, 2)
    return product, month, quarter, year


def test_home_lists_platforms_and_products_in_fixed_queries(
    client, catalog, django_assert_num_queries
):
    for n in range(5):
        extra = ProductFactory(
            platform=catalog[0].platform, slug=f"extra-{n}", name=f"Extra {n}"
        )
        SkuFactory(product=extra, code=f"EX-{n}")

    with django_assert_num_queries(2):
        response = client.get(reverse("storefront:home"))

    page = response.content.decode()
    assert "腾讯视频" in page
    assert "腾讯视频 VIP" in page
    assert "Extra 4" in page


def test_home_hides_products_with_nothing_on_sale(client, catalog):
    ProductFactory(platform=catalog[0].platform, name="Ghost product", slug="ghost")
    hidden = ProductFactory(
        platform=catalog[0].platform, name="Off product", slug="off"
    )
    SkuFactory(product=hidden, code="OFF-1", is_active=False)

    page = client.get(reverse("storefront:home")).content.decode()

    assert "Ghost product" not in page
    assert "Off product" not in page


def test_product_page_shows_skus_with_stock_state_in_fixed_queries(
    client, catalog, django_assert_num_queries
):
    with django_assert_num_queries(3):
        response = client.get(reverse("storefront:product-detail", args=["tx-vip"]))

    offers = {o.sku.code: o.stock_state for o in response.context["offers"]}
    assert offers == {"TX-M": "in_stock", "TX-Y": "low", "TX-Q": "sold_out"}
    page = response.content.decode()
    assert "月卡" in page
    assert "激活后有效 31 天" in page


def test_product_page_hides_skus_outside_sale_window_or_inactive(client, catalog):
    product = catalog[0]
    SkuFactory(
        product=product,
        code="FUTURE",
        name="未开售",
        sale_starts_at=timezone.now() + dt.timedelta(days=1),
    )
    SkuFactory(product=product, code="INACTIVE", name="已下架", is_active=False)

    response = client.get(reverse("storefront:product-detail", args=["tx-vip"]))

    codes = {o.sku.code for o in response.context["offers"]}
    assert codes == {"TX-M", "TX-Y", "TX-Q"}


def test_product_page_404_for_unknown_or_inactive_product(client, catalog):
    ProductFactory(slug="hidden", is_active=False)

    assert (
        client.get(reverse("storefront:product-detail", args=["nope"])).status_code
        == 404
    )
    assert (
        client.get(reverse("storefront:product-detail", args=["hidden"])).status_code
        == 404
    )


def test_stock_state_thresholds():
    assert stock_state(available=0, low_threshold=5) == "sold_out"
    assert stock_state(available=5, low_threshold=5) == "low"
    assert stock_state(available=6, low_threshold=5) == "in_stock"


def test_pages_render_in_english(client, catalog):
    response = client.get(reverse("storefront:home"), HTTP_ACCEPT_LANGUAGE="en")

    assert response["Content-Language"] == "en"
