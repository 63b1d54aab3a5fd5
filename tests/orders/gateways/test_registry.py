"""Which gateways exist: settings switch them on, checkout offers only those."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.urls import NoReverseMatch, clear_url_caches, reverse

from orders.gateways import gateway_get, gateways_all
from orders.models import PaymentNotify, SandboxTrade
from orders.services import payment_start
from tests.conftest import signed_notify
from tests.factories.orders import sandbox_trade_paid

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def sandbox_trade(order):
    payment_start(order=order, notify_url="http://x/n/", return_url="http://x/r/")
    return SandboxTrade.objects.get()


@pytest.fixture
def urlconf_reloaded():
    """Re-import the URLconf after a test changed the settings it reads at import."""
    enabled = django_settings.PAYMENT_SANDBOX_ENABLED

    def reload():
        import config.urls
        import orders.urls

        importlib.reload(orders.urls)
        importlib.reload(config.urls)
        clear_url_caches()

    yield reload
    with override_settings(PAYMENT_SANDBOX_ENABLED=enabled):
        reload()  # back to the suite's URLs


@pytest.mark.django_db
def test_sandbox_off_its_pay_page_and_notify_are_404(
    client, settings, sandbox_trade, order
):
    fields = signed_notify(order)
    settings.PAYMENT_SANDBOX_ENABLED = False

    page = client.get(f"/pay/sandbox/{sandbox_trade.token}/")
    notify = client.post("/payments/notify/sandbox/", fields)

    assert (page.status_code, notify.status_code) == (404, 404)
    assert not PaymentNotify.objects.exists()
    assert gateway_get("sandbox") is None


@pytest.mark.django_db
def test_sandbox_off_its_pay_page_is_not_routed(settings, urlconf_reloaded):
    settings.PAYMENT_SANDBOX_ENABLED = False
    urlconf_reloaded()

    with pytest.raises(NoReverseMatch):
        reverse("orders:sandbox-pay", args=["t"])


def test_sandbox_refuses_to_run_without_a_secret(settings):
    settings.SANDBOX_PAY_SECRET = ""

    with pytest.raises(ImproperlyConfigured, match="SANDBOX_PAY_SECRET"):
        gateways_all()


@pytest.mark.django_db
def test_checkout_offers_only_the_enabled_gateways(alice_client, settings, alipay, sku):
    url = reverse("orders:checkout") + f"?sku={sku.code}&quantity=1"

    both = alice_client.get(url).content.decode()
    settings.PAYMENT_SANDBOX_ENABLED = False
    alipay_only = alice_client.get(url).content.decode()

    assert 'value="alipay"' in both
    assert 'value="sandbox"' in both
    assert '<legend class="field-label">支付方式</legend>' in both
    assert 'value="alipay"' in alipay_only
    assert 'value="sandbox"' not in alipay_only
    assert 'value="wechat"' not in alipay_only


@pytest.mark.django_db
def test_checkout_with_a_disabled_gateway_shows_the_error_at_its_field(
    alice_client, settings, alipay, sku
):
    settings.PAYMENT_SANDBOX_ENABLED = False

    response = alice_client.post(
        reverse("orders:checkout"),
        {"sku": sku.code, "quantity": 1, "token": "t", "gateway": "sandbox"},
    )

    assert response.status_code == 400
    assert response.context["form"].errors["gateway"] == ["请选择可用的支付方式"]
    assert 'id="gateway-errors"' in response.content.decode()


@pytest.mark.django_db
def test_checkout_with_no_gateway_enabled_says_so(alice_client, settings, sku):
    settings.PAYMENT_SANDBOX_ENABLED = False

    response = alice_client.post(
        reverse("orders:checkout"), {"sku": sku.code, "quantity": 1, "token": "t"}
    )

    assert response.status_code == 400
    assert response.context["form"].errors["gateway"] == [
        "暂无可用的支付方式，请稍后再试"
    ]


@pytest.mark.django_db
def test_checkout_without_a_choice_pays_with_the_first_enabled(alice_client, sku):
    response = alice_client.post(
        reverse("orders:checkout"), {"sku": sku.code, "quantity": 1, "token": "t"}
    )

    assert response["Location"].startswith("/pay/sandbox/")


@pytest.mark.django_db
def test_sandbox_query_and_refund_query_read_its_own_table(sandbox_trade, order):
    gateway = gateway_get("sandbox")

    waiting = gateway.query(out_trade_no=order.number)
    trade = sandbox_trade_paid(order, trade_no="T9")
    paid = gateway.query(out_trade_no=order.number)

    assert waiting.status == "waiting"
    assert (paid.status, paid.trade_no, paid.amount) == (
        "success",
        "T9",
        Decimal("50.00"),
    )
    assert gateway.query(out_trade_no="NOPE") is None
    payment = type("P", (), {"trade_no": trade.trade_no})()
    gateway.refund(payment=payment, amount=Decimal("10.00"), refund_no="R1")
    assert gateway.refund_query(payment=payment, refund_no="R1").status == "succeeded"
    assert gateway.refund_query(payment=payment, refund_no="R2") is None


def _settings_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ALIPAY_", "WECHAT_PAY_", "PAYMENT_", "SANDBOX_"))
    }
    return subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; settings.DEBUG"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_alipay_half_configured_refuses_to_start():
    result = _settings_check({"ALIPAY_APP_ID": "2021000000000001"})

    assert result.returncode != 0
    assert "ALIPAY_SELLER_ID" in result.stderr
    assert "ALIPAY_APP_PRIVATE_KEY" in result.stderr


def test_alipay_keys_may_come_from_files(tmp_path):
    key = tmp_path / "app.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n")
    result = _settings_check(
        {
            "ALIPAY_APP_ID": "2021000000000001",
            "ALIPAY_SELLER_ID": "2088000000000001",
            "ALIPAY_APP_PRIVATE_KEY_FILE": str(key),
            "ALIPAY_PUBLIC_KEY": "pub",
        }
    )

    assert result.returncode == 0, result.stderr


def test_wechat_pay_needs_a_32_byte_apiv3_key():
    result = _settings_check(
        {
            "WECHAT_PAY_MCHID": "1900000109",
            "WECHAT_PAY_APPID": "wx1",
            "WECHAT_PAY_CERT_SERIAL_NO": "ABC",
            "WECHAT_PAY_PRIVATE_KEY": "k",
            "WECHAT_PAY_APIV3_KEY": "short",
            "WECHAT_PAY_PUBLIC_KEY": "p",
            "WECHAT_PAY_PUBLIC_KEY_ID": "PUB_KEY_ID_1",
        }
    )

    assert result.returncode != 0
    assert "WECHAT_PAY_APIV3_KEY must be 32 bytes" in result.stderr


def test_gateways_are_off_unless_configured():
    result = _settings_check({})

    assert result.returncode == 0, result.stderr


@pytest.mark.django_db
def test_checkout_names_the_gateways_in_english(alice_client, settings, alipay, sku):
    alice_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"

    html = alice_client.get(
        reverse("orders:checkout") + f"?sku={sku.code}&quantity=1"
    ).content.decode()

    assert "Alipay" in html
    assert "支付宝" not in html
