"""The Content Security Policy in Debian's Chromium: every page works and reports no violation.

Each page is watched two ways: the `securitypolicyviolation` events the document
fires (recorded by a script installed before the page's own) and the console,
where Chromium also writes "Refused to ... Content Security Policy". The pages
are used, not only loaded: the quantity stepper, the reveal and copy of a code
(fetch), the live order page, allauth's e-mail and TOTP pages (an inline data:
QR code), the admin's forms and import-export's "select all" toggle.
"""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings
from django.test import Client
from playwright.sync_api import expect

from fulfillment.models import CardCode
from tests.e2e.conftest import BACK_FROM_SANDBOX, PHONE
from tests.factories.accounts import UserFactory
from tests.factories.catalog import PlatformFactory, ProductFactory, SkuFactory
from tests.factories.fulfillment import stock_codes

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "A-long-Passw0rd-2026"

WATCH_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(
    `${event.violatedDirective} ${event.blockedURI} ${event.sample || ""}`
  );
});
"""


@pytest.fixture
def shop(live_server, settings):
    settings.PAYMENT_NOTIFY_BASE_URL = live_server.url
    platform = PlatformFactory(
        name="腾讯视频", slug="tencent-video", brand_color="#ff6a00"
    )
    product = ProductFactory(
        platform=platform, name="腾讯视频 VIP 会员", slug="tencent-video-vip"
    )
    sku = SkuFactory(product=product, code="TX-VIP-MONTH", name="月卡")
    stock_codes(sku, ["TXCSPCODE00001", "TXCSPCODE00002"])
    return live_server.url


class Watched:
    """A browser context whose pages' CSP violations and console refusals are kept."""

    def __init__(self, browser, base_url: str, user=None):
        self.context = browser.new_context(viewport=PHONE, locale="zh-CN")
        self.context.add_init_script(WATCH_VIOLATIONS)
        if user is not None:
            client = Client()
            client.force_login(user)
            self.context.add_cookies(
                [
                    {
                        "name": settings.SESSION_COOKIE_NAME,
                        "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                        "url": base_url,
                    }
                ]
            )
        self.base_url = base_url
        self.refusals: list[str] = []
        self.page = self.context.new_page()
        self.page.on("console", self._console)

    def _console(self, message) -> None:
        if "Content Security Policy" in message.text:
            self.refusals.append(message.text)

    def violations(self) -> list[str]:
        return [*self.refusals, *self.page.evaluate("window.__cspViolations || []")]

    def visit(self, path: str) -> None:
        response = self.page.goto(self.base_url + path)
        assert response is not None
        assert response.status < 400, path
        assert "script-src 'self'" in response.headers["content-security-policy"]
        self.page.wait_for_load_state("networkidle")
        assert self.violations() == [], path


def test_shopper_pages_work_under_the_csp(browser, shop):
    shopper = UserFactory(username="csp", email="csp@example.com", password=PASSWORD)
    EmailAddress.objects.create(
        user=shopper, email=shopper.email, verified=True, primary=True
    )
    watched = Watched(browser, shop, shopper)
    page = watched.page

    watched.visit("/")
    watched.visit("/p/tencent-video-vip/")
    page.locator("[data-qty-step='1']").click()  # site.js: the stepper and the total
    assert page.locator("input[name=quantity]").input_value() == "2"
    page.locator("[data-qty-step='-1']").click()
    page.locator("[data-buy-button]").click()
    page.wait_for_url("**/checkout/**")
    page.get_by_role("button", name="提交订单并支付").click()
    page.wait_for_url("**/pay/sandbox/**")
    page.get_by_role("button", name="确认支付").click()
    page.wait_for_url(BACK_FROM_SANDBOX)
    page.get_by_role("button", name="显示卡密").first.click()  # fetch, then in place
    expect(page.locator("[data-code-value]").first).to_contain_text("TXCSPCODE")
    assert watched.violations() == []
    watched.visit("/orders/")
    watched.visit("/accounts/email/")
    watched.visit("/accounts/2fa/totp/activate/")  # asks for the password again first
    page.fill("input[name=password]", PASSWORD)
    page.locator("form button[type=submit]").last.click()
    page.wait_for_url("**/accounts/2fa/totp/activate/")
    assert page.locator("img[src^='data:']").count() == 1  # the QR code shows
    assert watched.violations() == []
    watched.context.close()


def test_sign_in_pages_work_under_the_csp(browser, shop):
    watched = Watched(browser, shop)

    watched.visit("/accounts/login/")
    watched.visit("/accounts/signup/")
    watched.visit("/accounts/password/reset/")
    watched.context.close()


def test_admin_pages_work_under_the_csp(browser, shop):
    staff = UserFactory(
        username="root", email="root@example.com", is_staff=True, is_superuser=True
    )
    watched = Watched(browser, shop, staff)
    page = watched.page

    for path in [
        "/admin/",
        "/admin/fulfillment/codebatch/",
        "/admin/fulfillment/cardcode/",
        "/admin/orders/order/",
        "/admin/catalog/product/add/",  # prepopulated slug, the admin's own scripts
        "/admin/catalog/sku/add/",
        f"/admin/fulfillment/cardcode/{CardCode.objects.first().pk}/change/",  # <style>
    ]:
        watched.visit(path)

    watched.visit("/admin/fulfillment/codebatch/export/")
    fields = page.locator(".selectable-field-export-row input[type=checkbox]")
    assert fields.first.is_checked()
    page.locator("input[name=select-all-toggle]").uncheck()  # its inline handler runs
    assert not fields.first.is_checked()
    assert watched.violations() == []
    watched.context.close()
