"""Sub-stores (/s/<slug>/): the reseller's page, their prices, and checkout from there.

bob (tests/distribution/conftest.py) runs the sub-store "bobs" at tier 普通代理
(10 % off retail) with a 20 % markup; the shop sells 月卡 at ¥100.00.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from distribution.models import (
    MinimumResalePrice,
    OrderAttribution,
    Reseller,
    TierPrice,
)
from distribution.substore import ERR_SUBSTORE_GONE, substore_prices
from distribution.tiers import substore_price
from orders.models import Order
from tests.factories.catalog import ProductFactory, SkuFactory
from tests.factories.fulfillment import stock_codes

pytestmark = pytest.mark.django_db

D = Decimal
STORE = "/s/bobs/"
PRODUCT = "/s/bobs/p/tx-vip/"


@pytest.fixture
def month(db):
    product = ProductFactory(name="腾讯视频 VIP", slug="tx-vip")
    sku = SkuFactory(product=product, code="TX-M", name="月卡", price=D("100.00"))
    stock_codes(sku, 5)
    return sku


@pytest.fixture
def store(bob, tier):
    tier.discount_rate = D("0.10")
    tier.save()
    Reseller.objects.filter(pk=bob.pk).update(
        substore_slug="bobs",
        substore_name="小B数码",
        substore_announcement="周末九折，欢迎选购",
        substore_contact="QQ 123456",
        markup_rate=D("0.20"),
    )
    bob.refresh_from_db()
    return bob


def buy(client: Client, *, substore: str | None = "bobs", **extra):
    data = {"sku": "TX-M", "quantity": 2, "token": "t1", **extra}
    if substore is not None:
        data["substore"] = substore
    return client.post(reverse("orders:checkout"), data)


# --- prices ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minimum", "expected"),
    [
        (None, "108.00"),  # 90.00 × 1.2
        ("107.99", "108.00"),  # just under: the reseller's own price
        ("108.00", "108.00"),  # exactly the minimum
        ("108.01", "108.01"),  # a fen above: the minimum
        ("150.00", "150.00"),
    ],
)
def test_substore_price_is_tier_price_plus_markup_never_below_the_minimum(
    store, month, minimum, expected
):
    if minimum is not None:
        MinimumResalePrice.objects.create(sku=month, price=D(minimum))

    prices = substore_prices(reseller=store, skus=[month])

    assert prices == {month.id: D(expected)}
    assert prices[month.id] == substore_price(
        wholesale=D("90.00"),
        markup_rate=D("0.20"),
        minimum=D(minimum) if minimum else None,
    )


def test_substore_price_uses_the_tiers_own_price_for_the_sku(store, month):
    TierPrice.objects.create(tier=store.tier, sku=month, price=D("80.00"))

    assert substore_prices(reseller=store, skus=[month]) == {month.id: D("96.00")}


# --- pages ----------------------------------------------------------------------


def test_substore_home_shows_the_resellers_name_announcement_contact_and_products(
    client, store, month
):
    response = client.get(STORE)

    page = response.content.decode()
    assert response.status_code == 200
    assert "小B数码" in page
    assert "周末九折，欢迎选购" in page
    assert "QQ 123456" in page
    assert f'href="{PRODUCT}"' in page


@pytest.mark.parametrize("path", [STORE, PRODUCT], ids=["home", "product"])
@pytest.mark.parametrize("status", ["suspended", "applied", "rejected"])
def test_a_closed_substore_is_not_found(client, store, month, path, status):
    Reseller.objects.filter(pk=store.pk).update(status=status)

    assert client.get(path).status_code == 404


def test_an_unknown_substore_or_product_is_not_found(client, store, month):
    assert client.get("/s/nobody/").status_code == 404
    assert client.get("/s/bobs/p/nothing/").status_code == 404


def test_substore_product_page_shows_substore_prices_and_carries_the_slug(
    client, store, month
):
    response = client.get(PRODUCT)

    page = response.content.decode()
    assert response.status_code == 200
    assert "¥108.00" in page
    assert "¥100.00" not in page
    assert '<input type="hidden" name="substore" value="bobs">' in page
    assert "小B数码" in page


def test_the_shops_own_product_page_keeps_its_price_after_a_substore_visit(
    client, store, month
):
    client.get(PRODUCT)  # renders priced copies of the shared catalog SKUs

    page = client.get("/p/tx-vip/").content.decode()

    assert "¥100.00" in page
    assert "¥108.00" not in page
    assert 'name="substore"' not in page
    assert Client().get(PRODUCT).content.decode().count("¥108.00") >= 1


def test_substore_page_follows_a_markup_change_at_once(client, store, month):
    client.get(PRODUCT)
    Reseller.objects.filter(pk=store.pk).update(markup_rate=D("0.50"))

    assert "¥135.00" in client.get(PRODUCT).content.decode()


def test_substore_pages_follow_a_new_announcement_at_once(client, store, month):
    client.get(STORE)
    client.get(PRODUCT)
    Reseller.objects.filter(pk=store.pk).update(substore_announcement="新品上架")

    assert "新品上架" in client.get(STORE).content.decode()
    assert "新品上架" in client.get(PRODUCT).content.decode()


def test_substore_page_follows_a_new_minimum_price(client, store, month):
    client.get(PRODUCT)
    MinimumResalePrice.objects.create(sku=month, price=D("120.00"))

    assert "¥120.00" in client.get(PRODUCT).content.decode()


# --- checkout ---------------------------------------------------------------------


def test_checkout_page_from_a_substore_shows_its_price_and_keeps_the_slug(
    alice_client, store, month
):
    response = alice_client.get(
        reverse("orders:checkout"), {"sku": "TX-M", "quantity": 2, "substore": "bobs"}
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "¥216.00" in page
    assert '<input type="hidden" name="substore" value="bobs">' in page
    assert f'href="{PRODUCT}?sku=TX-M"' in page


def test_checkout_from_a_substore_charges_its_price_and_credits_the_reseller(
    alice_client, store, month
):
    response = buy(alice_client)

    assert response.status_code == 302
    order = Order.objects.get()
    assert order.total_amount == D("216.00")
    line = order.lines.get()
    assert (line.unit_price, line.amount) == (D("108.00"), D("216.00"))
    attribution = OrderAttribution.objects.get(order=order)
    assert (attribution.reseller, attribution.channel) == (
        store,
        OrderAttribution.Channel.SUBSTORE,
    )


def test_checkout_ignores_any_price_the_client_sends(alice_client, store, month):
    buy(
        alice_client,
        price="0.01",
        unit_price="0.01",
        total="0.02",
        total_amount="0.02",
        amount="0.02",
    )

    assert Order.objects.get().total_amount == D("216.00")


def test_checkout_never_charges_below_the_minimum_resale_price(
    alice_client, store, month
):
    Reseller.objects.filter(pk=store.pk).update(markup_rate=D("0"))
    MinimumResalePrice.objects.create(sku=month, price=D("95.00"))

    buy(alice_client)

    assert Order.objects.get().total_amount == D("190.00")


def test_checkout_prices_at_the_moment_of_the_order_not_of_the_page(
    alice_client, store, month
):
    alice_client.get(PRODUCT)
    Reseller.objects.filter(pk=store.pk).update(markup_rate=D("0.30"))

    buy(alice_client)

    assert Order.objects.get().total_amount == D("234.00")


@pytest.mark.parametrize("slug", ["nobody", "x" * 200, "<script>"])
def test_checkout_from_an_unknown_substore_places_nothing(
    alice_client, store, month, slug
):
    response = buy(alice_client, substore=slug)

    page = response.content.decode()
    assert response.status_code == 400
    assert str(ERR_SUBSTORE_GONE) in page
    assert page.count(str(ERR_SUBSTORE_GONE)) == 1
    assert 'name="substore"' not in page  # a resubmit is at the shop's own price
    assert "¥200.00" in page
    assert not Order.objects.exists()


def test_checkout_from_a_substore_closed_meanwhile_places_nothing(
    alice_client, store, month
):
    Reseller.objects.filter(pk=store.pk).update(status=Reseller.Status.SUSPENDED)

    response = buy(alice_client)

    assert response.status_code == 400
    assert not Order.objects.exists()


def test_checkout_without_a_substore_is_the_shops_own(alice_client, store, month):
    buy(alice_client, substore=None)

    order = Order.objects.get()
    assert order.total_amount == D("200.00")
    assert not OrderAttribution.objects.exists()


def test_a_reseller_buying_in_their_own_substore_is_credited_to_nobody(
    client, store, month
):
    client.force_login(store.user)

    buy(client)

    assert Order.objects.get().total_amount == D("216.00")
    assert not OrderAttribution.objects.exists()


def test_substore_pages_speak_english_too(alice_client, store, month):
    home = alice_client.get(STORE, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    checkout = alice_client.get(
        reverse("orders:checkout"),
        {"sku": "TX-M", "quantity": 1, "substore": "bobs"},
        HTTP_ACCEPT_LANGUAGE="en",
    ).content.decode()
    gone = alice_client.post(
        reverse("orders:checkout"),
        {"sku": "TX-M", "quantity": 1, "token": "t", "substore": "nobody"},
        HTTP_ACCEPT_LANGUAGE="en",
    )

    assert "Sub-store" in home
    assert "Customer service contact" in home
    assert "provided by this shop" in home
    assert "You are ordering in the “小B数码” sub-store" in checkout
    assert "This sub-store does not exist or has closed" in gone.content.decode()


def test_the_substore_home_links_to_its_own_product_pages_and_the_shop_to_its(
    client, store, month
):
    substore_home = client.get("/s/bobs/").content.decode()
    shop_home = client.get("/").content.decode()

    assert 'href="/s/bobs/p/tx-vip/"' in substore_home
    assert 'href="/p/tx-vip/"' in shop_home
    assert "/s/bobs/" not in shop_home


def test_the_shops_checkout_page_keeps_its_price_after_a_substore_checkout_page(
    alice_client, store, month
):
    alice_client.get(
        reverse("orders:checkout"), {"sku": "TX-M", "quantity": 2, "substore": "bobs"}
    )

    page = alice_client.get(
        reverse("orders:checkout"), {"sku": "TX-M", "quantity": 2}
    ).content.decode()

    assert "¥200.00" in page
    assert "¥216.00" not in page
