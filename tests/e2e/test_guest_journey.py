"""A guest in Debian's Chromium: buys with an email only through the sandbox, keeps
the link shown once, later looks the order up in another browser, reports a
problem; the operator replaces the code and the guest sees the new one."""

from __future__ import annotations

import re
import time

import pytest
from django.core import mail

from fulfillment.models import CodeAccessLog
from orders.guest import access_url
from orders.models import Order, ProblemReport
from orders.services.problems import problem_report_replace
from tests.e2e.conftest import PHONE, SHOTS
from tests.factories.accounts import UserFactory
from tests.factories.catalog import PlatformFactory, ProductFactory, SkuFactory
from tests.factories.fulfillment import stock_codes
from tests.orders.gateways.conftest import alipay, app_key  # noqa: F401  (fixtures)

CODES = ["GUESTCODE00001", "GUESTCODE00002"]

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shop(live_server, settings):
    settings.PAYMENT_NOTIFY_BASE_URL = live_server.url
    settings.SITE_URL = live_server.url
    platform = PlatformFactory(name="腾讯视频", slug="tencent-video")
    product = ProductFactory(
        platform=platform, name="腾讯视频 VIP 会员", slug="tencent-video-vip"
    )
    sku = SkuFactory(product=product, code="TX-VIP-MONTH", name="月卡")
    stock_codes(sku, CODES)
    return live_server.url


def test_guest_buys_looks_the_order_up_later_and_reports_a_problem(browser, shop):
    buying = browser.new_context(viewport=PHONE, locale="zh-CN")
    page = buying.new_page()

    # No account: the product, then the checkout asks for an email and a password.
    page.goto(f"{shop}/p/tencent-video-vip/")
    page.locator("[data-buy-button]").click()
    page.wait_for_url("**/checkout/**")
    page.get_by_label("邮箱").fill("guest@example.com")
    page.get_by_label("查询密码", exact=True).fill("secret12")
    page.get_by_label("确认查询密码").fill("secret13")
    page.get_by_role("button", name="提交订单并支付").click()
    page.wait_for_selector("#lookup_password2-errors")
    assert "两次输入的查询密码不一致" in page.inner_text("#lookup_password2-errors")
    page.screenshot(path=SHOTS / "guest-checkout-error.png", full_page=True)
    assert not Order.objects.exists()
    page.get_by_label("查询密码", exact=True).fill("secret12")
    page.get_by_label("确认查询密码").fill("secret12")
    page.screenshot(path=SHOTS / "guest-checkout.png", full_page=True)
    page.get_by_role("button", name="提交订单并支付").click()

    # The sandbox cashier, then the order page with its link shown this once.
    page.wait_for_url("**/pay/sandbox/**")
    page.get_by_role("button", name="确认支付").click()
    page.wait_for_url(re.compile(r"/orders/KQ[0-9A-Z]+/\?paying=sandbox$"))
    order = Order.objects.get()
    assert (order.user, order.status) == (None, Order.Status.DELIVERED)
    link = access_url(order)
    assert page.get_by_label("订单链接").input_value() == link
    page.screenshot(path=SHOTS / "guest-paid.png", full_page=True)
    page.reload()
    assert page.get_by_label("订单链接").count() == 0
    # The delivery email carries the same link.
    assert any(link in m.body for m in mail.outbox)
    buying.close()

    # Later, another browser: the lookup. A wrong password first.
    later = browser.new_context(viewport=PHONE, locale="zh-CN")
    page = later.new_page()
    page.goto(f"{shop}/orders/lookup/")
    page.get_by_label("订单号").fill(order.number.lower())
    page.get_by_label("下单邮箱").fill("Guest@Example.com")
    page.get_by_label("查询密码").fill("wrong-one")
    page.get_by_role("button", name="查询").click()
    page.wait_for_selector("#lookup-errors")
    assert "订单号、邮箱或查询密码不正确" in page.inner_text("#lookup-errors")
    page.screenshot(path=SHOTS / "guest-lookup-error.png", full_page=True)
    page.get_by_label("查询密码").fill("secret12")
    page.get_by_role("button", name="查询").click()
    page.wait_for_url(f"**/orders/{order.number}/")

    # Reveal the code (audited as a guest), then report it invalid.
    page.get_by_role("button", name="显示卡密").first.click()
    page.wait_for_function(
        "codes => codes.includes(document.querySelector('[data-code-value]').innerText.trim())",
        arg=CODES,
    )
    first_code = page.locator("[data-code-value]").first.inner_text().strip()
    assert CodeAccessLog.objects.get().action == "revealed_by_guest"
    page.get_by_text("遇到问题？反馈给客服").click()
    page.get_by_label("卡密无效").check()
    page.get_by_label("问题描述").fill("兑换时提示卡密无效")
    page.get_by_role("button", name="提交反馈").click()
    page.wait_for_selector("text=已收到您的问题反馈")
    page.screenshot(path=SHOTS / "guest-reported.png", full_page=True)
    report = ProblemReport.objects.get()
    assert (report.order_id, report.reporter) == (order.id, None)

    # The operator replaces the code; the guest sees the answer and the new code.
    problem_report_replace(
        report_id=report.id,
        actor=UserFactory(username="op", is_staff=True),
        reply="已为您更换新的卡密",
    )
    page.reload()
    assert "已为您更换新的卡密" in page.content()
    page.get_by_role("button", name="显示卡密").first.click()
    other = next(c for c in CODES if c != first_code)
    page.wait_for_function(
        "code => document.querySelector('[data-code-value]').innerText.trim() === code",
        arg=other,
    )
    page.screenshot(path=SHOTS / "guest-replaced.png", full_page=True)
    later.close()


@pytest.mark.usefixtures("alipay")
def test_guest_pays_with_alipays_stand_in_and_gets_the_order_page(browser, shop):
    """The pay flow for a guest through Alipay's stand-in (a real HTTP cashier):
    the return lands on the order page this browser has access to."""
    context = browser.new_context(viewport=PHONE, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{shop}/checkout/?sku=TX-VIP-MONTH&quantity=1")
    page.get_by_label("邮箱").fill("ali@example.com")
    page.get_by_label("查询密码", exact=True).fill("secret12")
    page.get_by_label("确认查询密码").fill("secret12")
    page.get_by_text("支付宝", exact=True).click()
    page.get_by_role("button", name="提交订单并支付").click()

    page.get_by_role("button", name="确认付款").click()  # Alipay's cashier
    page.wait_for_url(re.compile(r"/orders/KQ[0-9A-Z]+/\?"))  # with Alipay's return
    order = Order.objects.get()
    assert (order.user, order.email) == (None, "ali@example.com")
    # Alipay's notify comes on its own, from the stand-in's thread.
    for _ in range(100):
        order.refresh_from_db()
        if order.status == Order.Status.DELIVERED:
            break
        time.sleep(0.1)
    assert order.status == Order.Status.DELIVERED
    page.reload()  # the shopper's own reload: this browser still has access
    assert page.locator("[data-code-value]").count() == 1
    page.screenshot(path=SHOTS / "guest-alipay-paid.png", full_page=True)
    context.close()
