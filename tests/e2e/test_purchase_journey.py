"""The whole shopper journey in Debian's Chromium: sign up, buy, pay, reveal, my orders."""

from __future__ import annotations

import pytest

from fulfillment.models import CodeAccessLog
from orders.models import Order
from tests.e2e.conftest import BACK_FROM_SANDBOX, SHOTS
from tests.factories.catalog import PlatformFactory, ProductFactory, SkuFactory
from tests.factories.fulfillment import stock_codes

CODES = ["TXE2ECODE00001", "TXE2ECODE00002"]

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shop(live_server, settings):
    settings.PAYMENT_NOTIFY_BASE_URL = live_server.url
    platform = PlatformFactory(name="腾讯视频", slug="tencent-video")
    product = ProductFactory(
        platform=platform, name="腾讯视频 VIP 会员", slug="tencent-video-vip"
    )
    sku = SkuFactory(product=product, code="TX-VIP-MONTH", name="月卡")
    stock_codes(sku, CODES)
    return live_server.url


@pytest.mark.parametrize(
    "viewport",
    [{"width": 390, "height": 844}, {"width": 1280, "height": 800}],
    ids=["phone", "desktop"],
)
def test_shopper_signs_up_buys_pays_and_reveals_code(browser, shop, viewport):
    SHOTS.mkdir(parents=True, exist_ok=True)
    name = f"{viewport['width']}"
    context = browser.new_context(viewport=viewport, locale="zh-CN")
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=shop)
    page = context.new_page()

    # sign up
    page.goto(f"{shop}/accounts/signup/")
    page.fill("input[name=email]", "shopper@example.com")
    page.fill("input[name=password1]", "A-long-Passw0rd-2026")
    page.fill("input[name=password2]", "A-long-Passw0rd-2026")
    page.locator("form button[type=submit]").last.click()
    page.wait_for_load_state()

    # choose the product and buy
    page.goto(f"{shop}/")
    page.get_by_text("腾讯视频 VIP 会员").first.click()
    page.wait_for_url("**/p/tencent-video-vip/")
    page.screenshot(path=SHOTS / f"{name}-product.png", full_page=True)
    page.locator("[data-buy-button]").click()
    page.wait_for_url("**/checkout/**")
    page.screenshot(path=SHOTS / f"{name}-checkout.png", full_page=True)
    page.get_by_role("button", name="提交订单并支付").click()

    # the sandbox cashier
    page.wait_for_url("**/pay/sandbox/**")
    page.screenshot(path=SHOTS / f"{name}-cashier.png", full_page=True)
    page.get_by_role("button", name="确认支付").click()

    # the order page: delivered, code masked until revealed
    page.wait_for_url(BACK_FROM_SANDBOX)
    order = Order.objects.get()
    assert order.status == Order.Status.DELIVERED
    code_value = page.locator("[data-code-value]").first
    assert code_value.inner_text().strip() not in CODES
    page.get_by_role("button", name="显示卡密").first.click()
    page.wait_for_function(
        "codes => codes.includes(document.querySelector('[data-code-value]').innerText.trim())",
        arg=CODES,
    )
    revealed = code_value.inner_text().strip()
    assert revealed in CODES
    page.get_by_role("button", name="复制").first.click()
    assert page.evaluate("navigator.clipboard.readText()") == revealed
    page.screenshot(path=SHOTS / f"{name}-order.png", full_page=True)
    assert CodeAccessLog.objects.filter(action="revealed_by_buyer").count() == 1

    # my orders
    page.goto(f"{shop}/orders/")
    assert order.number in page.content()
    page.screenshot(path=SHOTS / f"{name}-orders.png", full_page=True)
    context.close()
