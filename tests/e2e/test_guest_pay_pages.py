"""A guest's pending order in Debian's Chromium, on a phone, in Chinese and English:
"pay now" offers the enabled gateways (the choice is used, a bad one is said at
the picker), and the way back is the order lookup, not a login page."""

from __future__ import annotations

import pytest

from orders.guest import access_url
from orders.models import Order, SandboxTrade
from orders.services import order_place
from tests.e2e.conftest import PHONE, SHOTS
from tests.factories.catalog import PlatformFactory, ProductFactory, SkuFactory
from tests.factories.fulfillment import stock_codes
from tests.orders.gateways.conftest import alipay, app_key  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WORDS = {
    "zh-CN": {
        "method": "支付方式",
        "sandbox": "沙箱支付",
        "alipay": "支付宝",
        "pay": "去支付",
        "back": "查询其他订单",
        "lookup": "查询订单",
        "invalid": "请选择可用的支付方式",
    },
    "en-US": {
        "method": "Payment method",
        "sandbox": "Sandbox payment",
        "alipay": "Alipay",
        "pay": "Pay",
        "back": "Look up another order",
        "lookup": "Look up an order",
        "invalid": "Please choose an available payment method",
    },
}


@pytest.fixture
def guest_order(live_server, settings):
    settings.PAYMENT_NOTIFY_BASE_URL = live_server.url
    settings.SITE_URL = live_server.url
    platform = PlatformFactory(name="腾讯视频", slug="tencent-video")
    product = ProductFactory(
        platform=platform, name="腾讯视频 VIP 会员", slug="tencent-video-vip"
    )
    sku = SkuFactory(product=product, code="TX-VIP-MONTH", name="月卡")
    stock_codes(sku, 2)
    return order_place(
        user=None,
        sku_code=sku.code,
        quantity=1,
        guest_email="guest@example.com",
        guest_password="secret12",
    )


@pytest.mark.usefixtures("alipay")
@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_a_guest_picks_the_gateway_and_finds_the_lookup(
    browser, live_server, guest_order, locale
):
    words = WORDS[locale]
    context = browser.new_context(viewport=PHONE, locale=locale)
    page = context.new_page()
    # The access link (as emailed): this browser now has the order.
    page.goto(access_url(guest_order))
    page.wait_for_url(f"**/orders/{guest_order.number}/")

    picker = page.get_by_role("group", name=words["method"])
    assert picker.get_by_label(words["alipay"]).is_checked()  # the first enabled
    assert not picker.get_by_label(words["sandbox"]).is_checked()
    back = page.get_by_role("link", name=words["back"])
    assert back.get_attribute("href") == "/orders/lookup/"
    assert page.locator('a[href="/orders/"]').count() == 0  # "my orders": a login
    nav = page.get_by_role(
        "navigation", name="主导航" if locale == "zh-CN" else "Main navigation"
    )
    assert nav.get_by_role("link", name=words["lookup"]).count() == 1
    page.screenshot(path=SHOTS / f"guest-pay-picker-{locale}.png", full_page=True)

    # A gateway switched off since the page was drawn: said at the picker.
    page.eval_on_selector(
        "input[name=gateway][value=sandbox]", "el => { el.value = 'wechat' }"
    )
    picker.get_by_label(words["sandbox"]).check()
    page.get_by_role("button", name=words["pay"]).click()
    page.wait_for_selector("#gateway-errors")
    assert words["invalid"] in page.inner_text("#gateway-errors")
    assert not SandboxTrade.objects.exists()
    page.screenshot(path=SHOTS / f"guest-pay-picker-error-{locale}.png", full_page=True)

    # The sandbox chosen: its cashier, not Alipay's (the first).
    page.get_by_role("group", name=words["method"]).get_by_label(
        words["sandbox"]
    ).check()
    page.get_by_role("button", name=words["pay"]).click()
    page.wait_for_url("**/pay/sandbox/**")
    assert SandboxTrade.objects.get().out_trade_no == guest_order.number

    # Back on the order page, the lookup is the way back.
    page.goto(f"{live_server.url}/orders/{guest_order.number}/")
    page.get_by_role("link", name=words["back"]).click()
    page.wait_for_url("**/orders/lookup/")
    assert Order.objects.get().status == Order.Status.PENDING
    context.close()


def test_a_single_method_shows_no_picker(browser, live_server, guest_order):
    context = browser.new_context(viewport=PHONE, locale="zh-CN")
    page = context.new_page()
    page.goto(access_url(guest_order))
    page.wait_for_url(f"**/orders/{guest_order.number}/")

    assert page.get_by_role("group", name="支付方式").count() == 0
    assert page.locator("input[name=gateway][type=radio]").count() == 0
    page.screenshot(path=SHOTS / "guest-pay-single-method.png", full_page=True)
    page.get_by_role("button", name="去支付").click()
    page.wait_for_url("**/pay/sandbox/**")
    context.close()
