"""The device cookie: set once per visitor, signed, HttpOnly; a forged one is replaced."""

from __future__ import annotations

import re

import pytest
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.urls import reverse

from risk.device import (
    COOKIE_MAX_AGE,
    COOKIE_NAME,
    COOKIE_SALT,
    DeviceMiddleware,
    device_id_from_cookie,
    ua_hash,
)
from tests.factories.catalog import ProductFactory, SkuFactory
from tests.factories.fulfillment import stock_codes

pytestmark = pytest.mark.django_db

ID = re.compile(r"[A-Za-z0-9_-]{22}")


def _with_cookie(value: str):
    request = RequestFactory().get("/")
    request.COOKIES[COOKIE_NAME] = value
    return request


def _device_of(response) -> str:
    """The id inside the response's device cookie (our signature verified)."""
    device = device_id_from_cookie(_with_cookie(response.cookies[COOKIE_NAME].value))
    assert device is not None
    return device


def _page_text(response) -> str:
    """The page without its per-visitor CSRF token."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", response.text)


def _echo(request):
    return HttpResponse(request.device_id)


def test_first_visit_gets_a_signed_httponly_lax_cookie_for_a_year(client):
    response = client.get("/")

    morsel = response.cookies[COOKIE_NAME]
    assert ID.fullmatch(_device_of(response))
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Lax"
    assert morsel["max-age"] == COOKIE_MAX_AGE == 365 * 24 * 3600
    assert morsel["path"] == "/"
    assert "private" in response["Cache-Control"]


def test_the_cookie_is_secure_when_cookies_must_be(client, settings):
    settings.SESSION_COOKIE_SECURE = True  # production: SECURE_COOKIES, on unless DEBUG

    response = client.get("/")

    assert response.cookies[COOKIE_NAME]["secure"] is True


def test_the_cookie_is_set_once_and_the_id_kept(client):
    first = client.get("/")
    device = _device_of(first)

    again = client.get("/")

    assert COOKIE_NAME not in again.cookies  # nothing set again
    assert client.cookies[COOKIE_NAME].value == first.cookies[COOKIE_NAME].value
    request = _with_cookie(first.cookies[COOKIE_NAME].value)
    assert DeviceMiddleware(_echo)(request).content.decode() == device


@pytest.mark.parametrize(
    "cookie",
    [
        "forged-device-id-aaaaaa",  # unsigned
        "",  # empty
        "x" * 5000,  # oversized
        "\x00\x01",  # control characters
    ],
    ids=["unsigned", "empty", "oversized", "control-chars"],
)
def test_a_malformed_cookie_is_replaced_never_trusted(cookie):
    response = DeviceMiddleware(_echo)(_with_cookie(cookie))

    device = response.content.decode()
    assert ID.fullmatch(device)
    assert device != cookie
    assert _device_of(response) == device


def test_a_tampered_cookie_is_replaced(client):
    genuine = client.get("/").cookies[COOKIE_NAME].value
    value, _, _signature = genuine.partition(":")
    # Another shopper's id under this cookie's signature: the signature fails.
    client.cookies[COOKIE_NAME] = "B" * 22 + genuine[22:]

    response = client.get("/")

    assert COOKIE_NAME in response.cookies
    assert _device_of(response) not in (value, "B" * 22)


def test_a_cookie_signed_by_us_for_something_else_is_replaced():
    # Signed with our key but another salt (e.g. another signed cookie's value).
    response = HttpResponse()
    response.set_signed_cookie(COOKIE_NAME, "A" * 22, salt="another.purpose")
    request = _with_cookie(response.cookies[COOKIE_NAME].value)

    assert device_id_from_cookie(request) is None
    assert DeviceMiddleware(_echo)(request).content.decode() != "A" * 22


def test_a_well_signed_id_of_the_wrong_shape_is_replaced():
    # As if our signing key had signed a value of another shape.
    response = HttpResponse()
    response.set_signed_cookie(COOKIE_NAME, "../../etc/passwd", salt=COOKIE_SALT)
    request = _with_cookie(response.cookies[COOKIE_NAME].value)

    assert device_id_from_cookie(request) is None
    assert ID.fullmatch(DeviceMiddleware(_echo)(request).content.decode())


def test_each_visitor_of_a_shared_cached_page_gets_their_own_cookie(
    django_assert_max_num_queries,
):
    product = ProductFactory(slug="tx-vip")
    stock_codes(SkuFactory(product=product, code="TX-M"), 2)
    url = reverse("storefront:product-detail", args=["tx-vip"])
    first, second = Client(), Client()

    one = first.get(url)
    with django_assert_max_num_queries(0):  # served from the whole-page cache
        two = second.get(url)

    assert _page_text(one) == _page_text(two)  # the same page...
    assert _device_of(one) != _device_of(two)  # ...each visitor's own cookie
    assert _device_of(one) not in one.content.decode()
    assert "private" in two["Cache-Control"]


def test_the_middleware_asks_neither_database_nor_cache(django_assert_num_queries):
    request = RequestFactory().get("/")

    with django_assert_num_queries(0):
        response = DeviceMiddleware(_echo)(request)

    assert COOKIE_NAME in response.cookies


def test_ua_hash_is_16_hex_of_the_user_agent():
    chrome = RequestFactory().get("/", HTTP_USER_AGENT="Mozilla/5.0 Chrome/130")
    firefox = RequestFactory().get("/", HTTP_USER_AGENT="Mozilla/5.0 Firefox/133")

    assert re.fullmatch(r"[0-9a-f]{16}", ua_hash(chrome))
    assert ua_hash(chrome) != ua_hash(firefox)
    assert ua_hash(chrome) == ua_hash(
        RequestFactory().get("/", HTTP_USER_AGENT="Mozilla/5.0 Chrome/130")
    )
    assert ua_hash(RequestFactory().get("/")) == ""


def test_a_gateways_notify_gets_an_id_but_no_device_cookie():
    notify = reverse("orders:payment-notify", args=["sandbox"])

    response = Client().post(notify, {"out_trade_no": "KQX"})

    assert COOKIE_NAME not in response.cookies


def test_a_browser_calling_a_csrf_exempt_view_still_gets_its_cookie():
    notify = reverse("orders:payment-notify", args=["sandbox"])
    browser = Client()
    browser.cookies["django_language"] = "en"

    response = browser.post(notify, {"out_trade_no": "KQX"})

    assert COOKIE_NAME in response.cookies


def test_a_cookie_once_accepted_is_replaced_when_its_key_is_retired(client, settings):
    settings.SECRET_KEY = "a-first-secret-key-" + "x" * 40
    device = _device_of(client.get("/"))
    assert COOKIE_NAME not in client.get("/").cookies  # accepted (and remembered)

    settings.SECRET_KEY = "a-second-secret-key-" + "y" * 40
    settings.SECRET_KEY_FALLBACKS = ["a-first-secret-key-" + "x" * 40]
    assert COOKIE_NAME not in client.get("/").cookies  # still valid: a fallback

    settings.SECRET_KEY_FALLBACKS = []  # the rotation is over
    replaced = client.get("/")

    assert COOKIE_NAME in replaced.cookies
    assert _device_of(replaced) != device
