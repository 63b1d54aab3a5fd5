"""NUL bytes anywhere in a request: a 404 or 400, never a 500 (config/lib/nul.py).

PostgreSQL refuses U+0000 in text, so each of these reached the database as a
500 before: an order number, a SKU, a search box, a notify field, a cookie.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from django.urls import reverse

from fulfillment.models import SupplierCallback
from orders.models import Order, PaymentNotify, SandboxTrade
from orders.services import order_place
from tests.conftest import signed_notify
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes, supplier_make

pytestmark = pytest.mark.django_db

NOTIFY_URL = reverse("orders:payment-notify", args=["sandbox"])
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def sku():
    sku = SkuFactory(code="TX-VIP-MONTH", product__slug="tx-vip")
    stock_codes(sku, ["TXCODE000001", "TXCODE000002", "TXCODE000003"])
    return sku


@pytest.fixture
def order(alice, sku):
    return order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)


@pytest.mark.parametrize(
    "path",
    [
        "/orders/%00/",
        "/orders/%00/pay/",
        "/pay/sandbox/%00/",
        "/p/%00/",
        "/p/tx-vip%00/",
        "/accounts/%00/",
        "/admin/orders/order/%00/change/",
        "/admin/fulfillment/codebatch/%00/change/",
    ],
)
def test_nul_in_a_path_is_404(admin_client, order, path):
    response = admin_client.get(path)

    assert response.status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/payments/notify/%00/",
        "/payments/notify/sandbox%00/",
        "/suppliers/callback/%00/",
        "/orders/KQ%00/pay/",
    ],
)
def test_nul_in_a_posted_path_is_404(client, order, path):
    response = client.post(path, "a=1", content_type=FORM)

    assert response.status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/?q=%00",
        "/p/tx-vip/?sku=%00",
        "/checkout/?sku=%00&quantity=1",
        "/checkout/?sku=TX-VIP-MONTH&quantity=1%00",
        "/orders/?page=%00",
        "/accounts/login/?next=%00",
        "/accounts/signup/?%00=1",
        "/admin/orders/order/?q=%00",
        "/admin/fulfillment/codebatch/?q=%00",
        "/admin/fulfillment/codebatch/export/?note=%00",
        "/healthz?probe=%00",
    ],
)
def test_nul_in_a_query_string_is_400(admin_client, alice, sku, url):
    response = admin_client.get(url)

    assert response.status_code == 400


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/checkout/", {"sku": "TX-VIP-MONTH\x00", "quantity": "1", "token": "t"}),
        ("/checkout/", {"sku": "TX-VIP-MONTH", "quantity": "1", "token": "t\x00"}),
        ("/accounts/login/", {"login": "alice@example.com\x00", "password": "x"}),
        ("/accounts/signup/", {"email": "a\x00@example.com", "password1": "x"}),
        ("/i18n/setlang/", {"language": "en\x00", "next": "/"}),
    ],
)
@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_nul_in_a_form_field_is_400_and_changes_nothing(
    alice_client, sku, url, data, encoding
):
    if encoding == "urlencoded":
        response = alice_client.post(url, urlencode(data), content_type=FORM)
    else:
        response = alice_client.post(url, data)

    assert response.status_code == 400
    assert not Order.objects.exists()


def test_nul_in_the_sandbox_pay_form_is_400_and_the_trade_still_waits(
    alice_client, sku
):
    alice_client.post(
        reverse("orders:checkout"), {"sku": "TX-VIP-MONTH", "quantity": 1, "token": "t"}
    )
    trade = SandboxTrade.objects.get()

    response = alice_client.post(
        reverse("orders:sandbox-pay", args=[trade.token]), {"action": "pay\x00"}
    )

    assert response.status_code == 400
    trade.refresh_from_db()
    assert trade.status == SandboxTrade.Status.WAITING


def test_the_400_page_is_the_friendly_page_in_the_visitors_language(client, db):
    chinese = client.get("/?q=%00")
    english = client.get("/?q=%00", HTTP_ACCEPT_LANGUAGE="en")

    assert chinese.status_code == english.status_code == 400
    assert "请求无效" in chinese.content.decode()
    assert 'name="viewport"' in chinese.content.decode()
    assert "Bad request" in english.content.decode()
    assert "Back to home" in english.content.decode()


def test_nul_asked_for_as_json_answers_json(alice_client, order):
    response = alice_client.post(
        reverse("orders:code-reveal", args=[order.number, 1]) + "?x=%00",
        HTTP_ACCEPT="application/json",
    )

    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid")


def test_a_cookie_holding_nul_is_ignored_not_a_500(client, alice, sku):
    client.force_login(alice)
    client.cookies["sessionid"] = "abcdefghijklmnop\x00qrstuvwxyz012345"
    client.cookies["django_language"] = "en\x00"

    home = client.get("/")
    orders = client.get(reverse("orders:order-list"))

    assert home.status_code == 200
    assert '<html lang="zh-hans">' in home.content.decode()  # the cookie's "en" dropped
    assert orders.status_code == 302  # no session: to the login page


def test_notify_with_nul_is_recorded_as_rejected_in_the_gateways_format(client, order):
    fields = signed_notify(order)
    fields["trade_no"] = "T1\x00"

    response = client.post(NOTIFY_URL, urlencode(fields), content_type=FORM)

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.startswith(b"fail")
    notify = PaymentNotify.objects.get()
    assert notify.outcome == PaymentNotify.Outcome.BAD_SIGNATURE
    assert notify.trade_no == "T1\ufffd"
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_notify_with_raw_nul_bytes_and_a_nul_query_is_recorded_too(client, order):
    body = urlencode(signed_notify(order)).replace("trade_no=T1", "trade_no=T1\x00")

    response = client.post(NOTIFY_URL + "?x=%00", body, content_type=FORM)

    assert (response.status_code, response["Content-Type"][:10]) == (400, "text/plain")
    assert PaymentNotify.objects.get().outcome == PaymentNotify.Outcome.BAD_SIGNATURE


def test_notify_multipart_with_nul_is_a_plain_400(client, order):
    fields = signed_notify(order)
    fields["trade_no"] = "T1\x00"

    response = client.post(NOTIFY_URL, fields)

    assert (response.status_code, response.content) == (400, b"fail: invalid request")
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING


def test_a_clean_multipart_notify_still_pays(client, order):
    response = client.post(NOTIFY_URL, signed_notify(order))

    assert response.content == b"success"


def test_supplier_callback_with_nul_is_recorded_as_rejected(client, db):
    supplier_make("acme")
    body = json.dumps({"customer_order_no": "KQT-1\x00", "state": "success"})

    response = client.post(
        reverse("fulfillment:supplier-callback", args=["acme"]),
        body,
        content_type="application/json",
    )

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    callback = SupplierCallback.objects.get()
    assert callback.outcome == SupplierCallback.Outcome.BAD_SIGNATURE
    assert "\\u0000" not in callback.body


@pytest.mark.parametrize(
    "body",
    [b"sku=TX-VIP-MONTH&quantity=1&token=t%00", b"sku=TX-VIP-MONTH&token=t\x00"],
    ids=["escaped", "raw-byte"],
)
def test_nul_however_a_form_spells_it_is_answered_before_the_view(
    alice_client, sku, body
):
    response = alice_client.post(
        "/checkout/", body, content_type=FORM, HTTP_ACCEPT="application/json"
    )

    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid")
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    ("query", "charset"),
    [("q=a%00", "utf-8"), ("q=a\x00", "utf-8"), ("q=a+AAA-", "utf-7")],
    ids=["escaped", "raw-byte", "utf-7"],  # UTF-7 spells NUL without either
)
def test_nul_however_a_query_spells_it_is_answered_before_the_view(
    client, db, query, charset
):
    response = client.get(
        "/",
        QUERY_STRING=query,
        CONTENT_TYPE=f"text/plain; charset={charset}",
        HTTP_ACCEPT="application/json",
    )

    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid")
