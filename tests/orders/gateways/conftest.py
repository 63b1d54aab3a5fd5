"""Alipay and WeChat Pay stand-ins on loopback, with the shop configured against them.

Keys are generated here (once per session: RSA key generation is slow); each test
gets fresh stand-ins on free ports and settings pointing at them.
"""

from __future__ import annotations

import re
import secrets

import httpx
import pytest

from orders.gateways.standins.alipay import AlipayStandin
from orders.gateways.standins.keys import private_pem, public_pem, rsa_key
from orders.gateways.standins.wechat import WechatStandin
from orders.services import order_place
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes

ALIPAY_APP_ID = "2021000000000001"
WECHAT_MCHID = "1900000109"
WECHAT_APPID = "wxd678efh567hg6787"
WECHAT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"


@pytest.fixture(scope="session")
def app_key():
    """The shop's Alipay app key."""
    return rsa_key()


@pytest.fixture(scope="session")
def merchant_key():
    """The shop's WeChat Pay merchant API key."""
    return rsa_key()


@pytest.fixture
def alipay(settings, app_key):
    """A running Alipay stand-in and the shop configured to use it."""
    standin = AlipayStandin(
        app_id=ALIPAY_APP_ID, app_public_key=public_pem(app_key)
    ).start()
    settings.PAYMENT_ALIPAY_ENABLED = True
    settings.ALIPAY_APP_ID = ALIPAY_APP_ID
    settings.ALIPAY_SELLER_ID = standin.seller_id
    settings.ALIPAY_APP_PRIVATE_KEY = private_pem(app_key)
    settings.ALIPAY_PUBLIC_KEY = standin.public_key
    settings.ALIPAY_GATEWAY_URL = standin.gateway_url
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def wechat(settings, merchant_key):
    """A running WeChat Pay stand-in and the shop configured to use it."""
    apiv3_key = secrets.token_hex(16)  # 32 characters
    standin = WechatStandin(
        mchid=WECHAT_MCHID,
        appid=WECHAT_APPID,
        merchant_public_key=public_pem(merchant_key),
        merchant_serial_no=WECHAT_SERIAL,
        apiv3_key=apiv3_key,
    ).start()
    settings.PAYMENT_WECHAT_ENABLED = True
    settings.WECHAT_PAY_MCHID = WECHAT_MCHID
    settings.WECHAT_PAY_APPID = WECHAT_APPID
    settings.WECHAT_PAY_CERT_SERIAL_NO = WECHAT_SERIAL
    settings.WECHAT_PAY_PRIVATE_KEY = private_pem(merchant_key)
    settings.WECHAT_PAY_APIV3_KEY = apiv3_key
    settings.WECHAT_PAY_PUBLIC_KEY = standin.public_key
    settings.WECHAT_PAY_PUBLIC_KEY_ID = standin.public_key_id
    settings.WECHAT_PAY_API_URL = standin.base_url
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def sku(db):
    sku = SkuFactory(code="TX-VIP-MONTH")
    stock_codes(sku, ["TXCODE000001", "TXCODE000002", "TXCODE000003"])
    return sku


@pytest.fixture
def order(alice, sku):
    """Two codes for ¥50.00, reserved and waiting for payment."""
    return order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=2)


def cashier_submit(page_url: str, action: str = "pay") -> httpx.Response:
    """What a shopper does at the stand-in's cashier: open the page, press a button."""
    page = httpx.get(page_url, timeout=5)
    page.raise_for_status()
    match = re.search(r'<form method="post"(?: action="([^"]*)")?', page.text)
    assert match, page.text
    target = httpx.URL(page_url).join(match.group(1) or page_url)
    return httpx.post(target, data={"action": action}, timeout=5)
