"""Buy again: delivered and cancelled orders lead back to the product, SKU and quantity chosen."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from orders.services import order_cancel, order_place

pytestmark = pytest.mark.django_db


def page(client, order):
    return client.get(
        reverse("orders:order-detail", args=[order.number])
    ).content.decode()


def product_url(sku, qty):
    return (
        reverse("storefront:product-detail", args=[sku.product.slug])
        + f"?sku={sku.code}&amp;qty={qty}"
    )


def quantity_value(html):
    return re.search(r'id="id_quantity"[^>]*value="(\d+)"', html, re.S).group(1)


def test_a_delivered_order_offers_buy_again_with_sku_and_quantity(
    alice_client, paid_order, sku
):
    html = page(alice_client, paid_order)

    assert "再次购买" in html
    assert product_url(sku, 2) in html
    product = alice_client.get(
        reverse("storefront:product-detail", args=[sku.product.slug]),
        {"sku": sku.code, "qty": "2"},
    ).content.decode()
    assert quantity_value(product) == "2"
    assert f'value="{sku.code}" required' in product


def test_a_cancelled_order_links_back_to_its_product(alice_client, alice, sku):
    order = order_place(user=alice, sku_code=sku.code, quantity=3)
    order_cancel(order_id=order.id, reason="payment_timeout")

    html = page(alice_client, order)

    assert "返回商品页" in html
    assert "再次购买" in html
    assert product_url(sku, 3) in html


def test_a_pending_order_has_no_buy_again(alice_client, alice, sku):
    order = order_place(user=alice, sku_code=sku.code, quantity=1)

    assert "再次购买" not in page(alice_client, order)


@pytest.mark.parametrize("qty", ["0", "99", "x", "-1"])
def test_a_quantity_the_sku_does_not_allow_falls_back_to_its_minimum(
    alice_client, sku, qty
):
    product = alice_client.get(
        reverse("storefront:product-detail", args=[sku.product.slug]),
        {"sku": sku.code, "qty": qty},
    ).content.decode()

    assert quantity_value(product) == str(sku.min_per_order)


def test_the_product_page_tells_the_self_refund_window_before_buying(client, sku):
    url = reverse("storefront:product-detail", args=[sku.product.slug])

    html = client.get(url).content.decode()

    assert "发货后 24 小时内，未查看的卡密可一键退款" in html
    assert "查看卡密后，该卡密不再支持自助退款" in html
