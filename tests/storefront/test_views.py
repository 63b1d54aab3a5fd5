from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from catalog.models import Platform, Sku
from fulfillment.availability import stock_state
from fulfillment.models import CardCode, Supplier, SupplierProduct
from tests.factories.catalog import (
    BundleItemFactory,
    PlatformFactory,
    ProductFactory,
    SkuFactory,
)
from tests.factories.fulfillment import mapping_make, stock_codes, supplier_make

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

    # Cold: platforms, products, their SKUs' sale windows; warm: nothing at all.
    with django_assert_num_queries(3):
        response = client.get(reverse("storefront:home"))
    with django_assert_num_queries(0):
        again = client.get(reverse("storefront:home"))

    for page in (response.content.decode(), again.content.decode()):
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
    # Cold: product, SKUs, code counts; warm: nothing at all.
    url = reverse("storefront:product-detail", args=["tx-vip"])
    with django_assert_num_queries(3):
        response = client.get(url)
    with django_assert_num_queries(0):
        again = client.get(url)

    offers = {o.sku.code: o.stock_state for o in response.context["offers"]}
    assert offers == {"TX-M": "in_stock", "TX-Y": "low", "TX-Q": "sold_out"}
    # The same page from the cache, apart from the visitor's CSRF token.
    token = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')
    assert token.sub("", again.content.decode()) == token.sub(
        "", response.content.decode()
    )
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


# --- Top-ups and bundles on the product page ----------------------------------------


def _capacity(sku, *, balance="100.00"):
    """Map `sku` to a supplier that reports it on and can pay for it."""
    supplier = supplier_make(f"sup-{sku.code.lower()}")
    mapping = mapping_make(sku, supplier, f"P-{sku.code}", cost="24.00")
    SupplierProduct.objects.filter(pk=mapping.pk).update(
        supplier_status=SupplierProduct.SupplierStatus.ON
    )
    Supplier.objects.filter(pk=supplier.pk).update(last_balance=Decimal(balance))
    return supplier


@pytest.fixture
def mixed():
    """One product with a card SKU, a QQ top-up SKU and a bundle of a card and the top-up."""
    platform = PlatformFactory(
        name="腾讯视频", slug="tencent", account_rule=Platform.AccountRule.QQ
    )
    product = ProductFactory(platform=platform, name="腾讯视频 VIP", slug="tx-vip")
    card = SkuFactory(product=product, code="TX-M", name="月卡")
    stock_codes(card, 10)
    topup = SkuFactory(
        product=ProductFactory(platform=platform, name="腾讯视频 VIP 直充"),
        code="TX-DIRECT",
        name="月卡直充",
        delivery=Sku.Delivery.DIRECT_TOPUP,
    )
    mirror = SkuFactory(
        product=product,
        code="TX-M-DIRECT",
        name="月卡直充",
        delivery=Sku.Delivery.DIRECT_TOPUP,
    )
    music = SkuFactory(
        product=ProductFactory(name="网易云音乐 黑胶 VIP"), code="NE-M", name="黑胶月卡"
    )
    stock_codes(music, 4)
    bundle = SkuFactory(
        product=product,
        code="TX-NE-BUNDLE",
        name="腾讯视频 + 网易云 联合会员",
        delivery=Sku.Delivery.BUNDLE,
        low_stock_threshold=2,
    )
    BundleItemFactory(bundle=bundle, component=topup)
    BundleItemFactory(bundle=bundle, component=music)
    _capacity(topup)
    _capacity(mirror)
    return product


def _url(slug="tx-vip"):
    return reverse("storefront:product-detail", args=[slug])


def test_product_page_with_topups_and_bundles_costs_two_queries_more(
    client, mixed, django_assert_num_queries
):
    # product, SKUs, code counts (3, as a card-only product) + bundle parts, capacity
    with django_assert_num_queries(5):
        response = client.get(_url())
    with django_assert_num_queries(0):
        client.get(_url())

    offers = {
        o.sku.code: (o.stock_state, o.available) for o in response.context["offers"]
    }
    assert offers == {
        "TX-M": ("low", 10),
        "TX-M-DIRECT": ("in_stock", None),
        "TX-NE-BUNDLE": ("in_stock", 4),
    }


def test_product_page_shows_each_skus_delivery_kind_and_never_sold_out_topups(
    client, mixed
):
    page = client.get(_url()).content.decode()

    assert "已售罄" not in page
    assert "暂停充值" not in page
    assert page.count('class="kind-tag kind-tag--card_code"') >= 1
    assert "直充到账号" in page
    assert "组合包 · 2 项" in page
    # the three radios are all buyable
    assert page.count("disabled") == 0


def test_product_page_says_before_purchase_that_bundle_parts_are_separate(
    client, mixed
):
    response = client.get(_url())

    page = response.content.decode()
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "组合包内的各项权益属于不同平台的独立账号和权益，分别发放、分别使用" in text
    assert "腾讯视频 VIP 直充 · 月卡直充 × 1" in text
    assert "网易云音乐 黑胶 VIP · 黑胶月卡 × 1" in text
    assert 'aria-describedby="bundle-TX-NE-BUNDLE"' in page
    assert 'id="bundle-TX-NE-BUNDLE"' in page


def test_product_page_aside_describes_the_kinds_offered(client, mixed, catalog_only):
    mixed_page = client.get(_url()).content.decode()
    card_page = client.get(_url("card-only")).content.decode()

    topup_text = "付款成功后自动充值到您在下单时填写的账号"
    code_text = "卡密显示在订单页"
    bundle_text = "包内各项分别发放"
    assert topup_text in mixed_page
    assert code_text in mixed_page
    assert bundle_text in mixed_page
    assert code_text in card_page
    assert topup_text not in card_page
    assert bundle_text not in card_page


@pytest.fixture
def catalog_only():
    product = ProductFactory(name="优酷 VIP", slug="card-only")
    stock_codes(SkuFactory(product=product, code="YK-M"), 3)
    return product


def test_product_page_topup_without_supplier_capacity_cannot_be_bought(client, mixed):
    Supplier.objects.update(last_balance=Decimal("1.00"))  # cannot pay the cost

    response = client.get(_url())

    offers = {o.sku.code: o.can_buy for o in response.context["offers"]}
    assert offers == {"TX-M": True, "TX-M-DIRECT": False, "TX-NE-BUNDLE": False}
    page = response.content.decode()
    assert "暂停充值" in page
    assert "已售罄" in page  # the bundle: its top-up part cannot be delivered


def test_product_page_bundle_sold_out_when_its_card_part_is_out(client, mixed):
    CardCode.objects.filter(sku__code="NE-M").delete()

    response = client.get(_url())

    offers = {o.sku.code: o.stock_state for o in response.context["offers"]}
    assert offers["TX-NE-BUNDLE"] == "sold_out"
    assert offers["TX-M-DIRECT"] == "in_stock"


def test_product_page_with_bundle_renders_in_english(client, mixed):
    response = client.get(_url(), HTTP_ACCEPT_LANGUAGE="en")

    page = response.content.decode()
    assert response["Content-Language"] == "en"
    for english in (
        "Top-up to your account",
        "Bundle · 2 items",
        "separate accounts and rights on different platforms",
        "Delivery",
    ):
        assert english in page
    for chinese in ("直充到账号", "组合包内的各项权益", "发货方式", "可充值"):
        assert chinese not in page


def test_product_page_of_a_bundle_alone_explains_bundles_only(client, mixed):
    Sku.objects.filter(code__in=["TX-M", "TX-M-DIRECT"]).update(is_active=False)

    page = client.get(_url()).content.decode()

    assert "包内各项分别发放" in page
    assert "付款成功后自动充值到您在下单时填写的账号" not in page
    assert "点击“显示卡密”即可查看" not in page
    assert "组合包包含" in page  # one bundle: no need to repeat its name
