"""The reseller dashboard in Debian's Chromium, at phone width, in Chinese and English.

A reseller with a month on the ledger and a downline opens /reseller/: the page
works under the CSP (no violation), the chart and QR codes are drawn without
script, a product's QR opens in place, a payout is requested, and the language
switch turns the page English. Screenshots: artifacts/e2e/390-reseller-*.png.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from distribution.models import Payout
from tests.distribution.dashboard_story import DAY, month_of, sale
from tests.e2e.conftest import PHONE, SHOTS
from tests.factories.accounts import UserFactory
from tests.factories.catalog import PlatformFactory, ProductFactory, SkuFactory
from tests.factories.distribution import ResellerFactory, TierFactory, rule_set

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WATCH_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


@pytest.fixture
def bob(live_server, settings):
    settings.SITE_URL = live_server.url
    settings.PAYOUT_MINIMUM = Decimal("10.00")
    settings.COMMISSION_SETTLEMENT_DAYS = 7
    tier = TierFactory(name="普通代理", is_default=True)
    rule_set(1, "0.10")
    platform = PlatformFactory(name="腾讯视频", slug="tencent-video")
    sku = SkuFactory(
        product=ProductFactory(
            platform=platform, name="腾讯视频 VIP 会员", slug="tencent-video-vip"
        ),
        price=Decimal("100.00"),
    )
    SkuFactory(
        product=ProductFactory(
            platform=PlatformFactory(name="网易云音乐", slug="netease-music"),
            name="网易云音乐黑胶 VIP",
            slug="netease-vip",
        )
    )
    bob = ResellerFactory(
        user=UserFactory(username="bob", email="bob@example.com"),
        tier=tier,
        substore_slug="bobs-shop",
        substore_name="小鲍的会员铺",
    )
    carol = ResellerFactory(
        user=UserFactory(username="carol", email="carol@example.com"),
        parent=bob,
        tier=tier,
        substore_name="卡萝的小店",
    )
    dave = ResellerFactory(
        user=UserFactory(username="dave", email="dave@example.com"),
        parent=carol,
        tier=tier,
    )
    alice = UserFactory(username="alice", email="alice@example.com")
    staff = UserFactory(username="staff", email="staff@example.com", is_staff=True)
    now = timezone.now()
    month_of(bob, alice, sku, staff, now)
    sale(alice, carol, sku, "60.00", now - 2 * DAY, earn=False)
    sale(alice, dave, sku, "40.00", now - 2 * DAY, earn=False)
    return bob


def _page(browser, base_url: str, user, locale: str):
    context = browser.new_context(viewport=PHONE, locale=locale)
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
    return context, context.new_page()


def _violations(page) -> list[str]:
    return page.evaluate("window.__cspViolations || []")


def test_reseller_dashboard_on_a_phone_in_both_languages(browser, live_server, bob):
    base = live_server.url
    context, page = _page(browser, base, bob.user, "zh-CN")
    refusals: list[str] = []
    page.on(
        "console",
        lambda m: (
            refusals.append(m.text) if "Content Security Policy" in m.text else None
        ),
    )

    response = page.goto(f"{base}/reseller/")

    assert response is not None
    assert response.status == 200
    assert page.get_by_role("heading", level=1).inner_text() == "代理中心"
    assert page.locator(".chart__svg rect.chart__bar").count() == 5
    assert page.locator(".share-list svg[role=img]").count() == 2  # referral, sub-store
    assert page.get_by_text("卡萝的小店").is_visible()
    # The page is no wider than the phone: tables scroll inside their own boxes.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=SHOTS / "390-reseller-zh.png", full_page=True)

    page.locator(
        "summary", has_text="网易云音乐黑胶 VIP"
    ).click()  # <details>: no script
    assert page.locator("details[open] svg[role=img]").is_visible()
    page.get_by_role("button", name="申请提现").click()
    page.wait_for_url("**/reseller/#payouts")
    assert page.get_by_text("已申请提现 ¥10.00").is_visible()
    assert Payout.objects.filter(reseller=bob, status="requested").count() == 1
    page.screenshot(path=SHOTS / "390-reseller-payout-zh.png", full_page=True)

    page.get_by_role("button", name="EN").click()
    page.wait_for_url("**/reseller/**")
    assert page.get_by_role("heading", level=1).inner_text() == "Reseller center"
    assert page.get_by_role(
        "heading", name="Daily commission, last 30 days"
    ).is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=SHOTS / "390-reseller-en.png", full_page=True)

    assert [*refusals, *_violations(page)] == []
    context.close()


def test_shopper_applies_on_a_phone(browser, live_server, bob):
    shopper = UserFactory(username="erin", email="erin@example.com")
    context, page = _page(browser, live_server.url, shopper, "zh-CN")

    page.goto(f"{live_server.url}/reseller/")  # not a reseller: the application
    page.wait_for_url("**/reseller/apply/")
    page.get_by_label("显示名称").fill("艾琳的卡券店")
    page.get_by_label("联系方式").fill("微信 erin_vip")
    page.get_by_role("button", name="提交申请").click()
    page.wait_for_url("**/reseller/apply/")

    assert page.get_by_text("申请已提交").is_visible()
    assert page.get_by_text("待审核").first.is_visible()
    page.screenshot(path=SHOTS / "390-reseller-apply-zh.png", full_page=True)
    assert _violations(page) == []
    context.close()
