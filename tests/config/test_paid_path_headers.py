"""What a browser and a gateway get back on the paid path: every response
header (name, value and order) and every cookie with its attributes, for a
checkout POST (a first visit, then with the device cookie kept), its pay page
and the notify. Recorded before the middleware's header writes were
shortened (docs/PERFORMANCE.md, "Paid path, session 8 … checkout and
middleware, round 2"); a change to what the middlewares write fails here.
"""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from orders.models import Order
from tests.conftest import signed_notify
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes

pytestmark = pytest.mark.django_db

# Values that differ per request (ids, tokens, signatures, dates).
VARIABLE = re.compile(r"'nonce-[^']+'|/pay/sandbox/[^/]+/")


def _value(name, value):
    if name == "Content-Security-Policy":  # django-csp's order is a set's
        return "; ".join(sorted(value.split("; ")))
    return VARIABLE.sub("<v>", value)


def _headers(response):
    return [
        (name, _value(name, value))
        for name, value in response.headers.items()
        if name not in ("Expires", "Date")
    ]


def _cookies(response):
    return sorted(
        (
            name,
            bool(morsel.value),
            *(
                (attr, str(morsel[attr]))
                for attr in ("path", "max-age", "secure", "httponly", "samesite")
            ),
            ("expires", bool(morsel["expires"])),
        )
        for name, morsel in response.cookies.items()
    )


@pytest.fixture
def paid_path(alice):
    sku = SkuFactory(code="TX-M")
    stock_codes(sku, 3)
    browser = Client()
    browser.force_login(alice)
    return browser


def _checkout(browser, token):
    return browser.post(
        reverse("orders:checkout"), {"sku": "TX-M", "quantity": 1, "token": token}
    )


def test_the_paid_paths_headers_and_cookies_are_what_they_were(paid_path, client):
    first = _checkout(paid_path, "t1")
    again = _checkout(paid_path, "t2")  # the device cookie kept
    pay_page = paid_path.get(again["Location"])
    order = Order.objects.get(client_token="t2")
    notify = client.post(
        reverse("orders:payment-notify", args=["sandbox"]), signed_notify(order)
    )

    assert {
        name: (r.status_code, _headers(r), _cookies(r))
        for name, r in [
            ("first", first),
            ("again", again),
            ("pay_page", pay_page),
            ("notify", notify),
        ]
    } == EXPECTED


# Recorded on main before this change (`dc71286`).
EXPECTED = {
    "first": (
        302,
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Location", "<v>"),
            ("Cache-Control", "private"),
            ("X-Frame-Options", "DENY"),
            ("Content-Length", "0"),
            ("Vary", "Accept-Language, Cookie"),
            ("Content-Language", "zh-hans"),
            (
                "Content-Security-Policy",
                "base-uri 'self'; connect-src 'self'; default-src 'self'; frame-ancestors 'none'; img-src 'self' data:; object-src 'none'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'",
            ),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "same-origin"),
            ("Cross-Origin-Opener-Policy", "same-origin"),
        ],
        [
            (
                "kq_device",
                True,
                ("path", "/"),
                ("max-age", "31536000"),
                ("secure", ""),
                ("httponly", "True"),
                ("samesite", "Lax"),
                ("expires", True),
            ),
        ],
    ),
    "again": (
        302,
        [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Location", "<v>"),
            ("X-Frame-Options", "DENY"),
            ("Content-Length", "0"),
            ("Vary", "Accept-Language, Cookie"),
            ("Content-Language", "zh-hans"),
            (
                "Content-Security-Policy",
                "base-uri 'self'; connect-src 'self'; default-src 'self'; frame-ancestors 'none'; img-src 'self' data:; object-src 'none'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'",
            ),
            ("Cache-Control", "private"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "same-origin"),
            ("Cross-Origin-Opener-Policy", "same-origin"),
        ],
        [],
    ),
    "pay_page": (
        200,
        [
            ("Content-Type", "text/html; charset=utf-8"),
            (
                "Cache-Control",
                "max-age=0, no-cache, no-store, must-revalidate, private",
            ),
            ("X-Frame-Options", "DENY"),
            ("Vary", "Cookie, Accept-Language"),
            ("Content-Length", "1916"),
            ("Content-Language", "zh-hans"),
            (
                "Content-Security-Policy",
                "base-uri 'self'; connect-src 'self'; default-src 'self'; frame-ancestors 'none'; img-src 'self' data:; object-src 'none'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'",
            ),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "same-origin"),
            ("Cross-Origin-Opener-Policy", "same-origin"),
        ],
        [
            (
                "csrftoken",
                True,
                ("path", "/"),
                ("max-age", "31449600"),
                ("secure", ""),
                ("httponly", ""),
                ("samesite", "Lax"),
                ("expires", True),
            ),
        ],
    ),
    "notify": (
        200,
        [
            ("Content-Type", "text/plain"),
            ("X-Frame-Options", "DENY"),
            ("Content-Length", "7"),
            ("Vary", "Accept-Language"),
            ("Content-Language", "zh-hans"),
            (
                "Content-Security-Policy",
                "base-uri 'self'; connect-src 'self'; default-src 'self'; frame-ancestors 'none'; img-src 'self' data:; object-src 'none'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'",
            ),
            ("Cache-Control", "private"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "same-origin"),
            ("Cross-Origin-Opener-Policy", "same-origin"),
        ],
        [],
    ),
}
