"""A flash sale in Debian's Chromium: one code, two shoppers; the late one is told
plainly that it is gone, with nothing charged and a way back."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress

from orders.models import Order
from orders.services import order_place
from tests.e2e.conftest import PHONE, SHOTS
from tests.factories.accounts import UserFactory
from tests.factories.catalog import PlatformFactory, ProductFactory, SkuFactory
from tests.factories.fulfillment import stock_codes

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "A-long-Passw0rd-2026"


@pytest.fixture
def flash_sale(live_server):
    platform = PlatformFactory(name="腾讯视频", slug="tencent-video")
    product = ProductFactory(
        platform=platform, name="腾讯视频 VIP 会员", slug="tencent-video-vip"
    )
    sku = SkuFactory(product=product, code="TX-FLASH", name="秒杀月卡")
    stock_codes(sku, ["TXFLASHCODE0001"])
    early = UserFactory(username="early", email="early@example.com")
    late = UserFactory(username="late", email="late@example.com", password=PASSWORD)
    EmailAddress.objects.create(
        user=late, email=late.email, verified=True, primary=True
    )
    return live_server.url, early


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_the_late_buyer_is_told_it_is_sold_out(browser, flash_sale, locale):
    shop, early = flash_sale
    context = browser.new_context(viewport=PHONE, locale=locale)
    page = context.new_page()
    page.goto(f"{shop}/accounts/login/")
    page.fill("input[name=login]", "late@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.locator("form button[type=submit]").last.click()
    page.wait_for_load_state()

    page.goto(f"{shop}/p/tencent-video-vip/")
    page.locator("[data-buy-button]").click()
    page.wait_for_url("**/checkout/**")
    # Someone else takes the last code while this shopper reads the page.
    order_place(user=early, sku_code="TX-FLASH", quantity=1)
    page.locator("form.checkout-form button[type=submit]").click()
    page.wait_for_load_state()

    alert = page.get_by_role("alert")
    expected = "秒杀月卡 已售罄" if locale == "zh-CN" else "秒杀月卡 is sold out"
    assert expected in alert.inner_text()
    page.screenshot(path=SHOTS / f"sold-out-{locale}.png", full_page=True)
    assert Order.objects.count() == 1  # only the early buyer's

    # Keyboard back to the product: it now says sold out, and buying is off.
    page.locator("a.btn--primary").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/p/tencent-video-vip/**")
    assert page.locator("[data-buy-button]").is_disabled()
    page.screenshot(path=SHOTS / f"sold-out-product-{locale}.png", full_page=True)
    context.close()
