"""The catalog admin: operators manage platforms, products and SKUs and see stock."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from catalog.models import BundleItem, Platform, Sku
from fulfillment.models import CardCode
from fulfillment.selectors import card_code_stock_counts
from tests.factories.accounts import UserFactory
from tests.factories.catalog import PlatformFactory, ProductFactory, SkuFactory
from tests.factories.fulfillment import stock_codes

# Session, user, permissions, the page, its count, the platform filter's choices:
# a fixed number however many SKUs are listed (8 when measured).
SKU_CHANGELIST_MAX_QUERIES = 10


def _stock_cells(html: str) -> dict[str, str]:
    """SKU code → the text of its 可售库存 cell, from the changelist HTML."""
    rows = re.findall(r"<tr>(.*?)</tr>", html, flags=re.S)
    cells = {}
    for row in rows:
        code = re.search(r'class="field-code"[^>]*>(?:<a [^>]*>)?([^<]+)<', row)
        stock = re.search(r'class="field-stock"[^>]*>([^<]*)<', row)
        if code and stock:
            cells[code.group(1)] = stock.group(1)
    return cells


@pytest.mark.parametrize(
    "model", ["platform", "validityrule", "product", "sku"], ids=str
)
def test_catalog_changelists_render_for_operator(operator_client, model):
    SkuFactory()

    response = operator_client.get(reverse(f"admin:catalog_{model}_changelist"))

    assert response.status_code == 200


@pytest.mark.parametrize(
    "model", ["platform", "validityrule", "product", "sku"], ids=str
)
def test_catalog_changelists_render_for_superuser(admin_client, model):
    SkuFactory()

    response = admin_client.get(reverse(f"admin:catalog_{model}_changelist"))

    assert response.status_code == 200


def test_sku_changelist_shows_sellable_stock_as_the_selector_counts(operator_client):
    sku = SkuFactory(code="TX-VIP-MONTH", low_stock_threshold=2)
    stock_codes(sku, 5)
    CardCode.objects.filter(
        pk__in=CardCode.objects.filter(sku=sku).order_by("pk").values("pk")[:1]
    ).update(expires_at=timezone.now() - dt.timedelta(days=1))
    topup = SkuFactory(code="TX-TOPUP", delivery=Sku.Delivery.DIRECT_TOPUP)

    response = operator_client.get(reverse("admin:catalog_sku_changelist"))

    cells = _stock_cells(response.content.decode())
    assert card_code_stock_counts(sku_ids=[sku.pk]) == {sku.pk: 4}
    assert cells[sku.code] == "4"
    assert cells[topup.code] == "—"


def test_sku_changelist_hides_stock_without_view_sku_stock(db, client):
    stock_codes(SkuFactory(code="TX-VIP-MONTH"), 3)
    clerk = UserFactory(username="clerk", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_sku"))
    client.force_login(clerk)

    response = client.get(reverse("admin:catalog_sku_changelist"))

    html = response.content.decode()
    assert response.status_code == 200
    assert "TX-VIP-MONTH" in html
    assert "field-stock" not in html
    assert "库存状态" not in html


def test_sku_changelist_query_count_does_not_grow_with_skus(
    operator_client, django_assert_max_num_queries
):
    for sku in SkuFactory.create_batch(3):
        stock_codes(sku, 2)
    with django_assert_max_num_queries(SKU_CHANGELIST_MAX_QUERIES):
        assert (
            operator_client.get(reverse("admin:catalog_sku_changelist")).status_code
            == 200
        )

    for sku in SkuFactory.create_batch(30):
        stock_codes(sku, 2)

    with django_assert_max_num_queries(SKU_CHANGELIST_MAX_QUERIES):
        response = operator_client.get(reverse("admin:catalog_sku_changelist"))

    assert response.status_code == 200
    assert len(_stock_cells(response.content.decode())) == 33


@pytest.mark.parametrize(
    ("stock", "expected"),
    [("sold_out", {"SOLD-OUT"}), ("low", {"LOW"}), ("in_stock", {"PLENTY"})],
)
def test_sku_stock_filter_lists_skus_in_that_state(operator_client, stock, expected):
    SkuFactory(code="SOLD-OUT", low_stock_threshold=2)
    stock_codes(SkuFactory(code="LOW", low_stock_threshold=2), 2)
    stock_codes(SkuFactory(code="PLENTY", low_stock_threshold=2), 3)
    SkuFactory(code="TOPUP", delivery=Sku.Delivery.DIRECT_TOPUP)

    response = operator_client.get(
        reverse("admin:catalog_sku_changelist"), {"stock": stock}
    )

    assert set(_stock_cells(response.content.decode())) == expected


def test_sku_change_page_shows_bundle_components_only_for_bundles(operator_client):
    bundle = SkuFactory(delivery=Sku.Delivery.BUNDLE)
    component = SkuFactory()
    BundleItem.objects.create(bundle=bundle, component=component, quantity=2)
    plain = SkuFactory()

    bundle_page = operator_client.get(
        reverse("admin:catalog_sku_change", args=[bundle.pk])
    )
    plain_page = operator_client.get(
        reverse("admin:catalog_sku_change", args=[plain.pk])
    )

    assert bundle_page.status_code == 200
    assert "bundle_items-TOTAL_FORMS" in bundle_page.content.decode()
    assert "bundle_items-TOTAL_FORMS" not in plain_page.content.decode()


def test_sku_code_is_read_only_once_created(operator_client):
    sku = SkuFactory(code="TX-VIP-MONTH")

    response = operator_client.get(reverse("admin:catalog_sku_change", args=[sku.pk]))

    assert 'name="code"' not in response.content.decode()
    assert "TX-VIP-MONTH" in response.content.decode()


def test_product_change_page_lists_its_skus_inline(operator_client):
    sku = SkuFactory(code="YK-VIP-YEAR")

    response = operator_client.get(
        reverse("admin:catalog_product_change", args=[sku.product.pk])
    )

    assert response.status_code == 200
    assert 'name="skus-0-code"' in response.content.decode()


def test_platform_add_saves_for_operator(operator_client):
    response = operator_client.post(
        reverse("admin:catalog_platform_add"),
        {
            "name": "爱奇艺",
            "slug": "iqiyi",
            "account_rule": Platform.AccountRule.PHONE,
            "brand_color": "#00be06",
            "sort_order": 10,
            "is_active": "on",
        },
    )

    assert response.status_code == 302
    assert Platform.objects.filter(slug="iqiyi").exists()


def test_sku_price_change_saves_for_operator(operator_client):
    sku = SkuFactory(price=Decimal("25.00"))
    data = {
        "product": sku.product.pk,
        "name": sku.name,
        "delivery": sku.delivery,
        "validity_rule": sku.validity_rule.pk,
        "face_value": "30.00",
        "price": "19.90",
        "is_active": "on",
        "min_per_order": 1,
        "max_per_order": 5,
        "low_stock_threshold": 10,
        "self_refund_hours": 24,
        "sort_order": 100,
    }

    response = operator_client.post(
        reverse("admin:catalog_sku_change", args=[sku.pk]), data
    )

    assert response.status_code == 302
    sku.refresh_from_db()
    assert sku.price == Decimal("19.90")


def test_sku_delete_is_forbidden_for_operator(operator_client):
    sku = SkuFactory()

    response = operator_client.get(reverse("admin:catalog_sku_delete", args=[sku.pk]))

    assert response.status_code == 403


def test_platform_changelist_redirects_customer_to_login(alice_client):
    PlatformFactory()

    response = alice_client.get(reverse("admin:catalog_platform_changelist"))

    assert response.status_code == 302


def test_product_changelist_filters_by_platform(operator_client):
    tencent = PlatformFactory(slug="tencent")
    ProductFactory(platform=tencent, name="腾讯视频 VIP")
    ProductFactory(name="优酷 VIP")

    response = operator_client.get(
        reverse("admin:catalog_product_changelist"), {"platform__id__exact": tencent.pk}
    )

    assert "腾讯视频 VIP" in response.content.decode()
    assert "优酷 VIP" not in response.content.decode()


def test_sku_admin_refuses_delivery_change_once_codes_exist(admin_client):
    sku = SkuFactory(code="TX-LOCK")
    stock_codes(sku, 1)
    url = reverse("admin:catalog_sku_change", args=[sku.pk])
    data = _sku_form_data(sku, delivery="direct_topup")

    response = admin_client.post(url, data)

    assert response.status_code == 200
    assert "不能再更改发货方式" in response.content.decode()
    sku.refresh_from_db()
    assert sku.delivery == "card_code"


def test_sku_admin_allows_delivery_change_without_codes(admin_client):
    sku = SkuFactory(code="TX-FREE")
    url = reverse("admin:catalog_sku_change", args=[sku.pk])

    response = admin_client.post(url, _sku_form_data(sku, delivery="direct_topup"))

    assert response.status_code == 302
    sku.refresh_from_db()
    assert sku.delivery == "direct_topup"


def test_bundle_item_refuses_a_bundle_inside_a_bundle(db):
    outer = SkuFactory(code="BUNDLE-A", delivery="bundle")
    inner = SkuFactory(code="BUNDLE-B", delivery="bundle")
    plain = SkuFactory(code="PLAIN-1")

    with pytest.raises(ValidationError) as nested:
        BundleItem(bundle=outer, component=inner, quantity=1).full_clean()
    with pytest.raises(ValidationError) as not_bundle:
        BundleItem(bundle=plain, component=outer, quantity=1).full_clean()

    assert "component" in nested.value.message_dict
    assert "bundle" in not_bundle.value.message_dict
    BundleItem(bundle=outer, component=plain, quantity=2).full_clean()


def _sku_form_data(sku, **overrides):
    data = {
        "product": sku.product_id,
        "name": sku.name,
        "face_value": str(sku.face_value),
        "price": str(sku.price),
        "delivery": sku.delivery,
        "validity_rule": sku.validity_rule_id or "",
        "min_per_order": sku.min_per_order,
        "max_per_order": sku.max_per_order,
        "low_stock_threshold": sku.low_stock_threshold,
        "self_refund_hours": sku.self_refund_hours,
        "sort_order": sku.sort_order,
        "is_active": "on",
        "_save": "Save",
    }
    data.update(overrides)
    return data
