""" "Pay now" on a pending order's page: the enabled gateways offered as at
checkout (SPEC 4.3 `gateway`), the chosen one used, a bad choice answered at
the field; with a single method, no picker."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from orders.guest import access_token
from orders.models import Order, SandboxTrade
from orders.services import order_place
from orders.services.payment_return import RETURN_CONFIRM_FOR
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes
from tests.orders.gateways.conftest import alipay, app_key  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def sku(db):
    sku = SkuFactory(code="TX-VIP-MONTH")
    stock_codes(sku, 3)
    return sku


@pytest.fixture
def order(alice, sku):
    return order_place(user=alice, sku_code=sku.code, quantity=1)


def pay_url(order: Order) -> str:
    return reverse("orders:order-pay", args=[order.number])


def _pay_form(html: str) -> str:
    """The "pay now" form of an order page."""
    return html.split('/pay/" data-once>', 1)[1].split("</form>", 1)[0]


@pytest.mark.usefixtures("alipay")
def test_the_order_page_offers_each_enabled_gateway_the_first_chosen(
    alice_client, order
):
    html = alice_client.get(
        reverse("orders:order-detail", args=[order.number])
    ).content.decode()

    form = _pay_form(html)
    assert '<legend class="field-label">支付方式</legend>' in form
    assert 'type="radio" name="gateway" id="id_gateway_0" value="alipay"' in form
    assert 'value="sandbox"' in form
    assert 'value="wechat"' not in form  # not enabled
    assert form.count("checked") == 1
    assert form.index("checked") < form.index('value="sandbox"')


def _checked(form: str) -> list[str]:
    return [
        part.split('value="', 1)[1].split('"', 1)[0]
        for part in form.split("<input")[1:]
        if "checked" in part.split(">", 1)[0]
    ]


@pytest.mark.usefixtures("alipay")
@pytest.mark.parametrize(
    ("came_back_from", "picked"),
    [("sandbox", ["sandbox"]), ("alipay", ["alipay"]), ("wechat", ["alipay"])],
)
def test_back_from_a_gateway_pay_now_has_that_gateway_picked(
    alice_client, order, came_back_from, picked
):
    """Back from a cashier unpaid (the "confirming" window over), "pay now" offers
    the same method first; one no longer offered (wechat is off here) leaves the
    first enabled picked."""
    cache.set(
        f"orders:paying-since:{order.number}", time.time() - RETURN_CONFIRM_FOR - 1
    )
    html = alice_client.get(
        reverse("orders:order-detail", args=[order.number]),
        {"paying": came_back_from},
    ).content.decode()

    assert _checked(_pay_form(html)) == picked


def test_pay_now_sends_the_shopper_to_the_chosen_gateway(
    alice_client,
    alipay,  # noqa: F811
    order,
):
    to_sandbox = alice_client.post(pay_url(order), {"gateway": "sandbox"})
    to_alipay = alice_client.post(pay_url(order), {"gateway": "alipay"})

    assert to_sandbox.status_code == to_alipay.status_code == 302
    assert to_sandbox["Location"].startswith("/pay/sandbox/")
    assert to_alipay["Location"].startswith(alipay.gateway_url)
    assert SandboxTrade.objects.filter(out_trade_no=order.number).count() == 1


@pytest.mark.usefixtures("alipay")
def test_pay_now_without_a_choice_pays_with_the_first_enabled(alice_client, order):
    response = alice_client.post(pay_url(order))

    assert response.status_code == 302
    assert not response["Location"].startswith("/pay/sandbox/")
    assert not SandboxTrade.objects.exists()


def test_a_single_method_is_sent_along_without_a_picker(alice_client, order):
    html = alice_client.get(
        reverse("orders:order-detail", args=[order.number])
    ).content.decode()

    form = _pay_form(html)
    assert '<input type="hidden" name="gateway" value="sandbox">' in form
    assert "<fieldset" not in form
    assert 'type="radio"' not in form
    assert alice_client.post(pay_url(order), {"gateway": "sandbox"})[
        "Location"
    ].startswith("/pay/sandbox/")


@pytest.mark.parametrize(
    "chosen", ["alipay", "wechat", "balance", "<b>x</b>", "x" * 500]
)
def test_an_unknown_or_disabled_gateway_is_an_error_at_the_picker(
    alice_client, order, chosen
):
    response = alice_client.post(pay_url(order), {"gateway": chosen})

    assert response.status_code == 400
    assert response.context["pay_form"].errors["gateway"] == ["请选择可用的支付方式"]
    html = response.content.decode()
    form = _pay_form(html)
    # The picker is shown with its error, even for a single method.
    assert 'aria-invalid="true"' in form
    assert 'id="gateway-errors"' in form
    assert 'type="radio" name="gateway" id="id_gateway_0" value="sandbox"' in form
    assert "<b>x</b>" not in html
    assert not SandboxTrade.objects.exists()
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_a_disabled_gateway_in_english(alice_client, order):
    alice_client.post(reverse("set_language"), {"language": "en"})

    response = alice_client.post(pay_url(order), {"gateway": "alipay"})

    assert response.status_code == 400
    assert "Please choose an available payment method" in response.content.decode()


def test_with_no_gateway_enabled_pay_now_says_so_at_the_field(
    alice_client, settings, order
):
    settings.PAYMENT_SANDBOX_ENABLED = False

    response = alice_client.post(pay_url(order), {"gateway": ""})

    assert response.status_code == 400
    assert response.context["pay_form"].errors["gateway"] == [
        "暂无可用的支付方式，请稍后再试"
    ]


@pytest.mark.usefixtures("alipay")
def test_a_guest_chooses_the_gateway_too(sku):
    order = order_place(
        user=None,
        sku_code=sku.code,
        quantity=1,
        guest_email="guest@example.com",
        guest_password="secret12",
    )
    browser = Client()
    browser.get(
        reverse("orders:order-detail", args=[order.number]),
        {"t": access_token(order.number)},
    )

    html = browser.get(
        reverse("orders:order-detail", args=[order.number])
    ).content.decode()
    response = browser.post(pay_url(order), {"gateway": "sandbox"})

    assert 'value="alipay"' in _pay_form(html)
    assert response["Location"].startswith("/pay/sandbox/")


def test_pay_now_on_a_paid_order_changes_nothing_whatever_the_gateway(
    alice_client, order
):
    Order.objects.filter(pk=order.pk).update(status=Order.Status.PAID)

    response = alice_client.post(pay_url(order), {"gateway": "nope"})

    assert response.status_code == 302
    assert response["Location"] == reverse("orders:order-detail", args=[order.number])
    assert not SandboxTrade.objects.exists()
