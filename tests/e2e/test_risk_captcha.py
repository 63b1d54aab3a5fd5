"""The checkout captcha in Debian's Chromium, on a phone, by keyboard alone:
asked by a risk rule, a wrong answer is an error at the field, the right one
places the order."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from captcha.models import CaptchaStore

from orders.models import Order
from risk.models import RiskRule
from tests.e2e.conftest import PHONE, SHOTS
from tests.factories.accounts import UserFactory
from tests.factories.catalog import PlatformFactory, ProductFactory, SkuFactory
from tests.factories.fulfillment import stock_codes
from tests.factories.risk import RiskRuleFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "A-long-Passw0rd-2026"


@pytest.fixture
def guarded_shop(live_server):
    platform = PlatformFactory(name="腾讯视频", slug="tencent-video")
    product = ProductFactory(
        platform=platform, name="腾讯视频 VIP 会员", slug="tencent-video-vip"
    )
    stock_codes(SkuFactory(product=product, code="TX-M", name="月卡"), 3)
    user = UserFactory(
        username="shopper", email="shopper@example.com", password=PASSWORD
    )
    EmailAddress.objects.create(
        user=user, email=user.email, verified=True, primary=True
    )
    RiskRuleFactory(
        name="验证码",
        kind=RiskRule.Kind.ORDER_QUANTITY,
        subject="",
        threshold=0,
        action=RiskRule.ActionChoice.CAPTCHA,
    )
    return live_server.url


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_the_captcha_is_solved_by_keyboard_on_a_phone(browser, guarded_shop, locale):
    shop = guarded_shop
    context = browser.new_context(viewport=PHONE, locale=locale)
    page = context.new_page()
    page.goto(f"{shop}/accounts/login/")
    page.fill("input[name=login]", "shopper@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.locator("form button[type=submit]").last.click()
    page.wait_for_load_state()
    page.goto(f"{shop}/checkout/?sku=TX-M&quantity=1")
    with page.expect_navigation():
        page.locator("form.checkout-form button[type=submit]").first.click()

    # Asked: a labelled field with the image, focused for typing.
    label = "验证码" if locale == "zh-CN" else "Verification code"
    field = page.get_by_label(label, exact=True)
    assert field.evaluate("el => el === document.activeElement")
    image = page.locator("img.captcha-image")
    assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    page.screenshot(path=SHOTS / f"captcha-asked-{locale}.png", full_page=True)

    # A wrong answer: the error sits at the field, a new image replaces the old.
    first_key = page.locator("input[name=captcha_0]").input_value()
    page.keyboard.type("zzzz")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    error = page.locator("#captcha-errors")
    assert error.is_visible()
    assert page.get_by_label(label, exact=True).get_attribute("aria-invalid") == "true"
    assert page.locator("input[name=captcha_0]").input_value() != first_key
    page.screenshot(path=SHOTS / f"captcha-wrong-{locale}.png", full_page=True)
    assert Order.objects.count() == 0

    # The right answer, typed and sent with Enter: the order goes to payment.
    key = page.locator("input[name=captcha_0]").input_value()
    page.keyboard.type(CaptchaStore.objects.get(hashkey=key).response)
    page.keyboard.press("Enter")
    page.wait_for_url("**/pay/sandbox/**")
    assert Order.objects.count() == 1
    context.close()
