"""The sold-out answer of a checkout POST, the rush's usual answer: cheap (two
cache round trips, no SQL), and still everything a page owes its visitor (the
CSRF check, the device cookie, the security headers), and never in the way of
a buyer whose click already placed an order."""

from __future__ import annotations

import re

import pytest
import redis
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from fulfillment.soldout import sold_out_known
from orders.models import Order
from risk.device import COOKIE_NAME as DEVICE_COOKIE
from risk.device import device_id_from_cookie
from tests.factories.catalog import PlatformFactory, ProductFactory, SkuFactory
from tests.factories.fulfillment import stock_codes

pytestmark = pytest.mark.django_db

CHECKOUT = "/checkout/"


@pytest.fixture
def flash(settings):
    """A SKU with one code, and a buy form's fields for it."""
    settings.ORDER_MAX_UNPAID_PER_USER = 10
    product = ProductFactory(
        platform=PlatformFactory(slug="tencent"), name="腾讯视频 VIP", slug="tx-vip"
    )
    sku = SkuFactory(product=product, code="TX-M", name="月卡")
    stock_codes(sku, 1)
    return sku


def _buy(client, token, **extra):
    return client.post(
        CHECKOUT, {"sku": "TX-M", "quantity": 1, "token": token}, **extra
    )


def _sell_out(client, django_capture_on_commit_callbacks):
    """The last code to this client's click "first"; the next click raises the flag."""
    with django_capture_on_commit_callbacks(execute=True):  # as committed
        placed = _buy(client, "first")
    assert placed.status_code == 302
    assert _buy(client, "finds-nothing").status_code == 409
    assert sold_out_known(Order.objects.get().lines.get().sku_id)
    return placed


def _signed_in(user):
    """Another browser of the same shopper."""
    other = Client()
    other.force_login(user)
    return other


def _token(html):
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)


def test_the_sold_out_answer_costs_two_cache_round_trips_and_no_sql(
    alice_client, flash, django_capture_on_commit_callbacks, monkeypatch
):
    _sell_out(alice_client, django_capture_on_commit_callbacks)
    commands = []
    real = redis.Redis.execute_command

    def counted(self, *args, **options):
        commands.append(args[0])
        return real(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counted)

    with CaptureQueriesContext(connection) as ctx:
        response = _buy(alice_client, "late")

    assert response.status_code == 409
    assert "月卡 已售罄" in response.text
    # The catalog version with the session, then the flag with this click's order.
    assert commands == ["MGET", "MGET"]
    assert ctx.captured_queries == []
    assert Order.objects.count() == 1


def test_the_sold_out_answer_still_checks_the_csrf_token(
    alice, flash, django_capture_on_commit_callbacks
):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    page = browser.get(reverse("storefront:product-detail", args=["tx-vip"]))
    token = _token(page.text)
    _sell_out(_signed_in(alice), django_capture_on_commit_callbacks)

    forged = _buy(browser, "late", HTTP_X_CSRFTOKEN="x" * 32)
    honest = _buy(browser, "late", HTTP_X_CSRFTOKEN=token)

    assert forged.status_code == 403
    assert honest.status_code == 409


def test_the_sold_out_page_keeps_the_csrf_cookie_and_its_form_works(
    alice, flash, django_capture_on_commit_callbacks
):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    token = _token(browser.get("/").text)
    cookie = browser.cookies["csrftoken"].value
    _sell_out(_signed_in(alice), django_capture_on_commit_callbacks)

    response = _buy(browser, "late", HTTP_X_CSRFTOKEN=token)

    assert response.status_code == 409
    assert "csrftoken" not in response.cookies  # unchanged: not sent again
    switched = browser.post(
        reverse("set_language"),
        {"language": "en", "next": "/", "csrfmiddlewaretoken": _token(response.text)},
    )
    assert switched.status_code == 302
    assert browser.cookies["csrftoken"].value == cookie


def test_the_sold_out_answer_replaces_a_forged_device_cookie(
    client, alice_client, flash, django_capture_on_commit_callbacks
):
    _sell_out(alice_client, django_capture_on_commit_callbacks)
    client.cookies[DEVICE_COOKIE] = "forged-device-id-0000000:1abcde:notasignature"

    response = _buy(client, "late")

    assert response.status_code == 409
    issued = response.cookies[DEVICE_COOKIE].value
    assert issued != "forged-device-id-0000000:1abcde:notasignature"
    request = Client().get("/").wsgi_request
    request.COOKIES[DEVICE_COOKIE] = issued
    assert device_id_from_cookie(request) is not None


def test_the_sold_out_answer_sends_the_security_headers(
    client, alice_client, flash, settings, django_capture_on_commit_callbacks
):
    settings.SECURE_HSTS_SECONDS = 3600
    _sell_out(alice_client, django_capture_on_commit_callbacks)

    response = _buy(client, "late", secure=True)

    assert response.status_code == 409
    assert "private" in response["Cache-Control"]
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Strict-Transport-Security"].startswith("max-age=3600")
    assert response["Content-Language"] == "zh-hans"
    assert "Accept-Language" in response["Vary"]


def test_a_second_click_with_the_same_token_goes_to_its_order(
    alice_client, flash, django_capture_on_commit_callbacks
):
    placed = _sell_out(alice_client, django_capture_on_commit_callbacks)

    again = _buy(alice_client, "first")

    assert again.status_code == 302
    assert again["Location"] == placed["Location"]
    assert Order.objects.count() == 1


def test_a_buyer_with_an_order_clicking_again_is_told_sold_out(
    alice_client, flash, django_capture_on_commit_callbacks
):
    _sell_out(alice_client, django_capture_on_commit_callbacks)

    again = _buy(alice_client, "a-new-click")

    assert again.status_code == 409
    assert Order.objects.count() == 1


def test_a_second_click_finds_its_order_when_the_session_copy_is_gone(
    alice_client, flash, django_capture_on_commit_callbacks
):
    placed = _sell_out(alice_client, django_capture_on_commit_callbacks)
    session_key = alice_client.cookies["sessionid"].value
    cache.delete(f"django.contrib.sessions.cached_db{session_key}")

    again = _buy(alice_client, "first")

    assert again.status_code == 302  # the session read from its row: still alice
    assert again["Location"] == placed["Location"]


def test_the_sold_out_answer_with_the_cache_down(
    alice_client, flash, settings, django_capture_on_commit_callbacks
):
    _sell_out(alice_client, django_capture_on_commit_callbacks)
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            "BACKEND": "config.lib.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
        },
    }

    response = _buy(alice_client, "late")

    # No flag to read: the reservation finds nothing, and says so.
    assert response.status_code == 409
    assert "月卡 已售罄" in response.text
    assert Order.objects.count() == 1


def test_the_sold_out_page_links_only_to_pages_a_guest_can_open(
    alice, flash, django_capture_on_commit_callbacks
):
    """One page for every late buyer, guests too: none of its links ends at a login."""
    _sell_out(_signed_in(alice), django_capture_on_commit_callbacks)
    page = _buy(_signed_in(alice), "late").text
    section = page[page.index('class="card empty-state"') :]
    links = re.findall(r'href="([^"]+)"', section[: section.index("</section>")])

    guest = Client()
    answers = {link: guest.get(link.replace("&amp;", "&")) for link in links}

    assert len(links) == 2
    assert {link: r.status_code for link, r in answers.items()} == dict.fromkeys(
        links, 200
    )
