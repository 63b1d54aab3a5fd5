"""A reseller shares a product link, a shopper buys through it, the reseller sees
the pending commission: in Debian's Chromium, on a phone.

bob copies the product's share link from /reseller/; the shopper opens it (the
referral cookie is set and the link's `ref` dropped), signs up, buys, pays at
the sandbox cashier and gets the code; bob's dashboard then shows ¥10.00 pending
(10 % of ¥100.00). Screenshots: artifacts/e2e/390-share-*.png.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.test import Client

from distribution.models import CommissionEntry, CustomerBinding, OrderAttribution
from orders.models import Order
from tests.e2e.conftest import BACK_FROM_SANDBOX, PHONE, SHOTS
from tests.factories.accounts import UserFactory
from tests.factories.catalog import PlatformFactory, ProductFactory, SkuFactory
from tests.factories.distribution import ResellerFactory, TierFactory, rule_set
from tests.factories.fulfillment import stock_codes

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "A-long-Passw0rd-2026"
WATCH_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


@pytest.fixture
def shop(live_server, settings):
    settings.SITE_URL = live_server.url
    settings.PAYMENT_NOTIFY_BASE_URL = live_server.url
    rule_set(1, "0.10")
    product = ProductFactory(
        platform=PlatformFactory(name="腾讯视频", slug="tencent-video"),
        name="腾讯视频 VIP 会员",
        slug="tencent-video-vip",
    )
    sku = SkuFactory(product=product, code="TX-VIP-MONTH", price=Decimal("100.00"))
    stock_codes(sku, ["TXSHARECODE0001"])
    bob = ResellerFactory(
        user=UserFactory(username="bob", email="bob@example.com"),
        tier=TierFactory(name="普通代理", is_default=True),
    )
    return live_server.url, bob


def _signed_in(browser, base_url: str, user):
    """A phone browser already signed in as `user` (their session cookie)."""
    context = browser.new_context(viewport=PHONE, locale="zh-CN")
    context.add_init_script(WATCH_VIOLATIONS)
    client = Client()
    client.force_login(user)
    context.add_cookies(
        [
            {
                "name": django_settings.SESSION_COOKIE_NAME,
                "value": client.cookies[django_settings.SESSION_COOKIE_NAME].value,
                "url": base_url,
            }
        ]
    )
    return context.new_page()


def test_a_shopper_buys_through_a_share_link_and_the_reseller_sees_it_pending(
    browser, shop
):
    base, bob = shop

    # bob copies the product's share link from his dashboard
    reseller_page = _signed_in(browser, base, bob.user)
    reseller_page.goto(f"{base}/reseller/")
    reseller_page.get_by_text("腾讯视频 VIP 会员").first.click()  # opens its <details>
    share_url = reseller_page.locator("input.share__url[id^=share-product-]").first
    link = share_url.input_value()
    assert link == f"{base}/p/tencent-video-vip/?ref={bob.referral_code}"

    # a shopper opens it on their phone, signs up and buys
    shopper = browser.new_context(viewport=PHONE, locale="zh-CN").new_page()
    shopper.goto(link)
    shopper.wait_for_url(f"{base}/p/tencent-video-vip/")  # `ref` dropped, cookie kept
    shopper.screenshot(path=SHOTS / "390-share-product.png", full_page=True)
    shopper.goto(f"{base}/accounts/signup/")
    shopper.fill("input[name=email]", "shopper@example.com")
    shopper.fill("input[name=password1]", PASSWORD)
    shopper.fill("input[name=password2]", PASSWORD)
    shopper.locator("form button[type=submit]").last.click()
    shopper.wait_for_load_state()
    shopper.goto(f"{base}/p/tencent-video-vip/")
    shopper.locator("[data-buy-button]").click()
    shopper.wait_for_url("**/checkout/**")
    shopper.get_by_role("button", name="提交订单并支付").click()
    shopper.wait_for_url("**/pay/sandbox/**")
    shopper.get_by_role("button", name="确认支付").click()
    shopper.wait_for_url(BACK_FROM_SANDBOX)

    order = Order.objects.get()
    assert order.status == Order.Status.DELIVERED
    assert OrderAttribution.objects.get(order=order).reseller_id == bob.pk
    assert CustomerBinding.objects.get().reseller_id == bob.pk

    # bob sees the commission, pending until the settlement window passes
    reseller_page.goto(f"{base}/reseller/")
    pending = reseller_page.locator(".balance--pending dd")
    assert pending.inner_text().strip() == "¥10.00"
    reseller_page.screenshot(path=SHOTS / "390-share-dashboard.png", full_page=True)
    entry = CommissionEntry.objects.get()
    assert (entry.reseller_id, entry.amount, entry.state) == (
        bob.pk,
        Decimal("10.00"),
        CommissionEntry.State.PENDING,
    )


def test_a_shopper_buys_in_a_substore_at_its_price(browser, shop):
    base, bob = shop
    bob.substore_slug = "bobs"
    bob.substore_name = "小鲍的会员铺"
    bob.substore_announcement = "周末特惠，欢迎选购"
    bob.substore_contact = "微信 bob-vip"
    bob.markup_rate = Decimal("0.05")
    bob.save()
    shopper = UserFactory(username="shopper", email="shopper@example.com")
    page = _signed_in(browser, base, shopper)

    page.goto(f"{base}/s/bobs/")
    assert page.get_by_role("heading", level=1).inner_text() == "小鲍的会员铺"
    page.screenshot(path=SHOTS / "390-substore-home.png", full_page=True)
    page.get_by_text("腾讯视频 VIP 会员").first.click()
    page.wait_for_url(f"{base}/s/bobs/p/tencent-video-vip/")
    assert "¥105.00" in page.locator("[data-total]").inner_text()
    assert page.evaluate("window.__cspViolations") == []
    page.screenshot(path=SHOTS / "390-substore-product.png", full_page=True)
    page.locator("[data-buy-button]").click()
    page.wait_for_url("**/checkout/**")
    assert "¥105.00" in page.locator(".summary__row--total").inner_text()
    assert page.evaluate("window.__cspViolations") == []  # no inline script or style
    page.get_by_role("button", name="提交订单并支付").click()
    page.wait_for_url("**/pay/sandbox/**")
    page.get_by_role("button", name="确认支付").click()
    page.wait_for_url(BACK_FROM_SANDBOX)

    order = Order.objects.get()
    assert (order.status, order.total_amount) == (
        Order.Status.DELIVERED,
        Decimal("105.00"),
    )
    assert OrderAttribution.objects.get(order=order).channel == "substore"
    # bob's margin over his wholesale price (¥100.00), at level 0 (DECISIONS.md)
    entry = CommissionEntry.objects.get()
    assert (entry.level, entry.amount) == (0, Decimal("5.00"))
