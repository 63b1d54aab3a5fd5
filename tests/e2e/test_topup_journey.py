"""Top-ups and bundles in Debian's Chromium, against the supplier simulator over HTTP.

The order page updates itself while a top-up is in flight: these tests watch it go
已提交 → 充值中 → 已到账 without a reload, and a bundle whose top-up part fails
say what was delivered and what came back.
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest
from allauth.account.models import EmailAddress
from django.utils import timezone
from kombu.exceptions import OperationalError

from catalog.models import Platform, Sku
from config.lib.http import json_clients_close
from fulfillment.models import CodeAccessLog, SupplierAttempt, TopUp
from fulfillment.services import supplier_refresh, topup_advance, topup_sweep
from fulfillment.tasks import topup_advance_task
from orders.models import Order, OrderLine
from tests.e2e.conftest import BACK_FROM_SANDBOX, PHONE, SHOTS
from tests.factories.accounts import PASSWORD, UserFactory
from tests.factories.catalog import (
    BundleItemFactory,
    PlatformFactory,
    ProductFactory,
    SkuFactory,
)
from tests.factories.fulfillment import (
    mapping_make,
    stock_codes,
    supplier_for_simulator,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

QQ = "123456789"
BAD_QQ = "12ab"
REFUSED_QQ = "987654321"  # the simulator refuses it (2004)
CODES = ["NEE2ECODE00001", "NEE2ECODE00002"]
# The page polls every 2.5 s: a state change shows within a few polls.
SEEN_WITHIN_MS = 15_000


@pytest.fixture(autouse=True)
def _fresh_json_clients():
    yield
    json_clients_close()


@pytest.fixture
def shop(live_server, settings, supplier_simulator):
    """A QQ top-up, a card SKU and a bundle of both, on the simulator as supplier."""
    settings.PAYMENT_NOTIFY_BASE_URL = live_server.url
    settings.SUPPLIER_CALLBACK_BASE_URL = live_server.url
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True
    settings.TOPUP_PLACEMENT_GRACE_SECONDS = 0
    tencent = PlatformFactory(
        name="腾讯视频",
        slug="tencent-video",
        account_rule=Platform.AccountRule.QQ,
        brand_color="#ff7a00",
    )
    topup = SkuFactory(
        product=ProductFactory(
            platform=tencent,
            name="腾讯视频 VIP 直充",
            slug="tencent-video-direct",
            summary="填写 QQ 号，腾讯视频会员自动充值到账，无需兑换",
        ),
        code="TX-DIRECT",
        name="月卡直充",
        delivery=Sku.Delivery.DIRECT_TOPUP,
        price=Decimal("26.50"),
        face_value=Decimal("30.00"),
    )
    music = SkuFactory(
        product=ProductFactory(
            platform=PlatformFactory(name="网易云音乐", slug="netease-music"),
            name="网易云音乐 黑胶 VIP",
            slug="netease-vinyl",
        ),
        code="NE-VINYL-MONTH",
        name="黑胶 VIP 月卡",
        price=Decimal("13.50"),
        face_value=Decimal("15.00"),
    )
    stock_codes(music, CODES)
    bundle = SkuFactory(
        product=ProductFactory(
            platform=tencent,
            name="腾讯视频 + 网易云音乐 联合会员包",
            slug="tencent-netease-bundle",
        ),
        code="BUNDLE-TX-NE",
        name="腾讯视频 VIP 月卡 + 网易云音乐 黑胶 VIP 月卡 联合会员包",
        delivery=Sku.Delivery.BUNDLE,
        price=Decimal("36.80"),
        face_value=Decimal("45.00"),
        max_per_order=2,
    )
    BundleItemFactory(bundle=bundle, component=topup, share=Decimal("2"))
    BundleItemFactory(bundle=bundle, component=music, share=Decimal("1"))
    supplier = supplier_for_simulator(supplier_simulator, name="sim")
    mapping_make(topup, supplier, "P-TX-VIP-MONTH", cost="24.00")
    # What the supplier says about balance and products decides whether top-ups sell.
    supplier_refresh(supplier_id=supplier.pk)
    return live_server.url


@pytest.fixture
def shopper(db):
    user = UserFactory(username="shopper", email="shopper@example.com")
    EmailAddress.objects.create(
        user=user, email=user.email, verified=True, primary=True
    )
    return user


def _log_in(page, shop, user):
    page.goto(f"{shop}/accounts/login/")
    page.fill("input[name=login]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.locator("form button[type=submit]").last.click()
    page.wait_for_load_state()


def _shot(page, name):
    """A full-page screenshot from the top (the sticky header stays in its place)."""
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=SHOTS / name, full_page=True)


def _mark_page(page):
    """A flag that only a full reload would clear."""
    page.evaluate("window.__kqNoReload = true")


def _not_reloaded(page):
    return page.evaluate("window.__kqNoReload === true")


def _badge(page, name):
    """The progress badge of the line (or bundle part) named `name`."""
    return (
        page.locator(f'[data-line-progress][data-line-name="{name}"] .line-status')
        .inner_text()
        .strip()
    )


def _wait_badge(page, name, text):
    page.wait_for_function(
        """([name, text]) => {
            const el = document.querySelector(
                `[data-line-progress][data-line-name="${name}"] .line-status`);
            return el && el.textContent.trim() === text;
        }""",
        arg=[name, text],
        timeout=SEEN_WITHIN_MS,
    )


def _advance_until_done(topup_id, *, tries=60):
    for _ in range(tries):
        topup = TopUp.objects.get(pk=topup_id)
        if not topup.is_open:
            return topup
        TopUp.objects.filter(pk=topup_id).update(lease_until=None)
        topup_advance(topup_id=topup_id)
        time.sleep(0.1)
    return TopUp.objects.get(pk=topup_id)


def _broker_down(*args, **kwargs):
    raise OperationalError("broker unreachable (test)")


def test_topup_journey_bad_account_then_live_progress_to_credited(
    browser, shop, shopper, supplier_simulator, monkeypatch
):
    context = browser.new_context(viewport=PHONE, locale="zh-CN")
    page = context.new_page()
    _log_in(page, shop, shopper)

    # the product page: a top-up, sellable while the supplier can take it
    page.goto(f"{shop}/p/tencent-video-direct/")
    option = page.locator(".sku-option", has_text="月卡直充")
    assert "可充值" in option.inner_text()
    assert "直充到账号" in option.inner_text()
    assert "已售罄" not in page.content()
    aside = page.locator(".info-card", has_text="发货方式").inner_text()
    assert "下单时填写的账号" in aside
    _shot(page, "topup-390-product-zh.png")
    page.locator("[data-buy-button]").click()
    page.wait_for_url("**/checkout/**")

    # checkout: a bad QQ number comes back at its field, as typed
    account = page.get_by_label("充值到的腾讯视频账号")
    assert account.get_attribute("inputmode") == "numeric"
    account.fill(BAD_QQ)
    page.get_by_role("button", name="提交订单并支付").click()
    page.wait_for_load_state()
    account = page.get_by_label("充值到的腾讯视频账号")
    assert account.input_value() == BAD_QQ
    assert account.get_attribute("aria-invalid") == "true"
    error = page.locator("#recharge_account-errors")
    assert "充值账号格式不正确" in error.inner_text()
    assert "recharge_account-errors" in account.get_attribute("aria-describedby")
    assert page.evaluate("document.activeElement.id") == "id_recharge_account"
    assert not Order.objects.exists()
    _shot(page, "topup-390-checkout-error-zh.png")
    page.set_viewport_size({"width": 375, "height": 812})
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    _shot(page, "topup-375-checkout-error-zh.png")
    page.set_viewport_size(PHONE)

    # the broker is down when the payment lands: the top-up waits for the sweep
    monkeypatch.setattr(topup_advance_task, "apply_async", _broker_down)
    account.fill(QQ)
    page.get_by_role("button", name="提交订单并支付").click()
    page.wait_for_url("**/pay/sandbox/**")
    page.get_by_role("button", name="确认支付").click()
    page.wait_for_url(BACK_FROM_SANDBOX)
    topup = TopUp.objects.get()
    assert topup.status == TopUp.Status.PENDING
    _wait_badge(page, "月卡直充", "已提交")
    assert QQ in page.locator(".line-progress__account").inner_text()
    _shot(page, "topup-390-order-submitted-zh.png")
    assert page.locator("[data-order-live][data-poll]").count() == 1
    _mark_page(page)

    # the sweep hands it to a (slow) supplier: 充值中, without a reload
    monkeypatch.undo()
    supplier_simulator.faults(processing_seconds=60)
    assert topup_sweep(now=timezone.now() + dt.timedelta(minutes=2)) == 1
    assert TopUp.objects.get().status == TopUp.Status.WAITING
    _wait_badge(page, "月卡直充", "充值中")
    assert _not_reloaded(page)
    _shot(page, "topup-390-order-inflight-zh.png")

    # the supplier settles; the page turns 已到账 by itself and stops polling
    number = SupplierAttempt.objects.get().customer_order_no
    supplier_simulator.complete(number)
    assert _advance_until_done(topup.pk).status == TopUp.Status.SUCCEEDED
    _wait_badge(page, "月卡直充", "已到账")
    assert _not_reloaded(page)
    page.wait_for_function(
        "!document.querySelector('[data-order-live][data-poll]')",
        timeout=SEEN_WITHIN_MS,
    )
    assert "已充值到您填写的账号" in page.locator(".alert").first.inner_text()
    assert page.locator("[data-order-announce]").inner_text().strip() != ""
    _shot(page, "topup-390-order-done-zh.png")
    order = Order.objects.get()
    assert order.status == Order.Status.DELIVERED
    assert supplier_simulator.report()["totals"]["orders_created"] == 1

    # the same page in English
    page.get_by_role("button", name="EN").click()
    page.wait_for_load_state()
    assert _badge(page, "月卡直充") == "Credited"
    _shot(page, "topup-390-order-done-en.png")
    context.close()


def test_bundle_journey_top_up_part_refused_card_part_delivered(
    browser, shop, shopper, supplier_simulator
):
    supplier_simulator.invalidate_accounts(REFUSED_QQ)
    context = browser.new_context(viewport=PHONE, locale="zh-CN")
    page = context.new_page()
    _log_in(page, shop, shopper)

    # before buying: the parts, and that they are separate accounts and rights
    page.goto(f"{shop}/p/tencent-netease-bundle/")
    note = page.locator(".bundle-note").inner_text()
    assert "组合包内的各项权益属于不同平台的独立账号和权益，分别发放、分别使用" in note
    assert "腾讯视频 VIP 直充 · 月卡直充 × 1" in note
    assert "网易云音乐 黑胶 VIP · 黑胶 VIP 月卡 × 1" in note
    _shot(page, "bundle-390-product-zh.png")
    page.locator("[data-buy-button]").click()
    page.wait_for_url("**/checkout/**")

    assert "分别发放、分别使用" in page.locator(".bundle-parts").inner_text()
    page.get_by_label("充值到的腾讯视频账号").fill(REFUSED_QQ)
    _shot(page, "bundle-390-checkout-zh.png")
    page.get_by_role("button", name="提交订单并支付").click()
    page.wait_for_url("**/pay/sandbox/**")
    page.get_by_role("button", name="确认支付").click()
    page.wait_for_url(BACK_FROM_SANDBOX)

    # the card part is delivered; the top-up part came back with its share
    order = Order.objects.get()
    assert order.status == Order.Status.PARTIALLY_REFUNDED
    refunded = OrderLine.objects.get(delivery=Sku.Delivery.DIRECT_TOPUP)
    assert refunded.status == OrderLine.Status.REFUNDED
    assert refunded.refunded_amount == Decimal("24.53")  # 36.80 × 2/3
    assert _badge(page, "黑胶 VIP 月卡") == "已发货"
    assert _badge(page, "月卡直充") == "已退款"
    reason = page.locator(
        '[data-line-name="月卡直充"] .line-progress__reason'
    ).inner_text()
    assert "已退回 ¥24.53" in reason
    assert "充值账号无效" in reason
    assert "分摊 ¥24.53" in page.content()
    assert "分摊 ¥12.27" in page.content()
    assert "部分退款" in page.locator(".alert").first.inner_text()
    page.get_by_role("button", name="显示卡密").click()
    page.wait_for_function(
        "codes => codes.includes(document.querySelector('[data-code-value]').innerText.trim())",
        arg=CODES,
    )
    _shot(page, "bundle-390-order-partly-refunded-zh.png")

    page.get_by_role("button", name="EN").click()
    page.wait_for_load_state()
    assert _badge(page, "月卡直充") == "Refunded"
    reason = page.locator(
        '[data-line-name="月卡直充"] .line-progress__reason'
    ).inner_text()
    assert "Invalid recharge account" in reason
    _shot(page, "bundle-390-order-partly-refunded-en.png")
    page.goto(f"{shop}/p/tencent-netease-bundle/")
    _shot(page, "bundle-390-product-en.png")
    context.close()


def test_revealed_code_stays_revealed_when_the_live_page_updates(
    browser, shop, shopper, supplier_simulator
):
    supplier_simulator.faults(processing_seconds=60)
    context = browser.new_context(viewport=PHONE, locale="zh-CN")
    page = context.new_page()
    _log_in(page, shop, shopper)
    page.goto(f"{shop}/checkout/?sku=BUNDLE-TX-NE&quantity=1")
    page.get_by_label("充值到的腾讯视频账号").fill(QQ)
    page.get_by_role("button", name="提交订单并支付").click()
    page.wait_for_url("**/pay/sandbox/**")
    page.get_by_role("button", name="确认支付").click()
    page.wait_for_url(BACK_FROM_SANDBOX)

    # the card part is out, the top-up part is with the (slow) supplier
    _wait_badge(page, "月卡直充", "充值中")
    assert _badge(page, "黑胶 VIP 月卡") == "已发货"
    _mark_page(page)
    page.get_by_role("button", name="显示卡密").click()
    page.wait_for_function(
        "codes => codes.includes(document.querySelector('[data-code-value]').innerText.trim())",
        arg=CODES,
    )
    revealed = page.locator("[data-code-value]").inner_text().strip()
    page.evaluate("document.querySelector('[data-order-live]').__kqSame = true")
    time.sleep(6)  # two polls with nothing new: the region is left alone
    assert page.evaluate("document.querySelector('[data-order-live]').__kqSame")
    assert page.locator("[data-code-value]").inner_text().strip() == revealed

    # the top-up lands: the region is swapped, the code stays on screen
    supplier_simulator.complete(SupplierAttempt.objects.get().customer_order_no)
    assert _advance_until_done(TopUp.objects.get().pk).status == TopUp.Status.SUCCEEDED
    _wait_badge(page, "月卡直充", "已到账")
    assert _not_reloaded(page)
    value = page.locator("[data-code-value]")
    assert value.inner_text().strip() == revealed
    assert "is-revealed" in value.get_attribute("class")
    assert page.get_by_role("button", name="显示卡密").count() == 0
    assert page.get_by_role("button", name="复制").is_visible()
    assert CodeAccessLog.objects.filter(action="revealed_by_buyer").count() == 1
    assert Order.objects.get().status == Order.Status.DELIVERED
    context.close()
