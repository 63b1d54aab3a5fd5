"""config/urls.py: the hot routes are tried first, and no URL goes elsewhere for it.

The patterns were reordered for speed (the paid path's routes first). Where a URL
goes must not have moved: the table below was recorded from the configuration
before the reordering, and every route of the whole configuration (admin and
allauth included) must still be the one that answers a path made from it (an
earlier pattern that took such a path would shadow the route).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RoutePattern

# path -> view name (None: a 404), recorded before config/urls.py was reordered.
RECORDED = [
    ("/", "storefront:home"),
    ("/healthz", "healthz"),
    ("/checkout/", "orders:checkout"),
    ("/checkout", None),
    ("/pay/sandbox/kq1/", "orders:sandbox-pay"),
    ("/pay/wechat/kq1/", "orders:wechat-pay"),
    ("/pay/wechat/kq1/status/", "orders:wechat-pay-status"),
    ("/payments/notify/sandbox/", "orders:payment-notify"),
    ("/payments/notify/sandbox/refund/", "orders:refund-notify"),
    ("/orders/", "orders:order-list"),
    ("/orders/lookup/", "orders:order-lookup"),
    ("/orders/claim/", "orders:guest-claim"),
    ("/orders/kq1/", "orders:order-detail"),
    ("/orders/kq1/pay/", "orders:order-pay"),
    ("/orders/kq1/codes/7/reveal/", "orders:code-reveal"),
    ("/orders/kq1/lines/7/refund/", "orders:line-refund"),
    ("/orders/kq1/lines/7/report/", "orders:line-report"),
    ("/p/kq-1/", "storefront:product-detail"),
    ("/p/a/b/", None),
    ("/s/kq-1/", "storefront:substore-home"),
    ("/s/kq-1/p/kq-1/", "storefront:substore-product"),
    ("/suppliers/callback/kq1/", "fulfillment:supplier-callback"),
    ("/reseller/", "distribution:dashboard"),
    ("/reseller/entries/7/", "distribution:entry-detail"),
    ("/reseller/payouts/7/ledger.csv", "distribution:payout-export"),
    ("/api/v1/", "partner-api:api-root"),
    ("/api/v1/orders/kq1", "partner-api:order_detail"),
    ("/accounts/login/", "account_login"),
    ("/accounts/confirm-email/k:ey-1/", "account_confirm_email"),
    (
        "/accounts/password/reset/key/1a-set-password/",
        "account_reset_password_from_key",
    ),
    ("/i18n/setlang/", "set_language"),
    ("/captcha/image/abc/", "captcha-image"),
    ("/captcha/refresh/", "captcha-refresh"),
    ("/admin/", "admin:index"),
    ("/admin/orders/", "admin:app_list"),
    ("/admin/orders/order/1/change/", "admin:orders_order_change"),
    ("/nope/", None),
]

# What a path made from a route puts in each converter's place.
SAMPLES = {"str": "kq1", "int": "7", "slug": "kq-1", "path": "kq1"}
SAMPLES["uuid"] = "12345678-1234-5678-1234-567812345678"
CONVERTER = re.compile(r"<(?:(\w+):)?\w+>")


def _routes(
    resolver: URLResolver, prefix: str = ""
) -> Iterator[tuple[str, URLPattern]]:
    """(the full route, the pattern) of every route made of path() segments only."""
    for pattern in resolver.url_patterns:
        if not isinstance(pattern.pattern, RoutePattern):
            continue  # a regex: its paths are not made from a template here
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern, route)
        else:
            yield route, pattern


def _view_name(path: str) -> str | None:
    try:
        return resolve(path).view_name
    except Resolver404:
        return None


@pytest.mark.parametrize(("path", "view_name"), RECORDED)
def test_url_resolves_where_it_did_before_the_reordering(path, view_name):
    assert _view_name(path) == view_name


def test_url_every_route_answers_the_paths_made_from_it():
    shadowed = []
    routes = list(_routes(get_resolver()))

    for route, pattern in routes:
        sample = "/" + CONVERTER.sub(lambda m: SAMPLES[m.group(1) or "str"], route)
        match = resolve(sample)
        if match.route != route or match.func is not pattern.callback:
            shadowed.append((route, match.route))

    assert len(routes) > 300  # admin's and allauth's too
    assert shadowed == []


@pytest.mark.parametrize(
    ("path", "view_name", "most_tried"),
    [
        ("/checkout/", "orders:checkout", 2),
        ("/pay/sandbox/a-Zq_09xYtoken-urlsafe_AB/", "orders:sandbox-pay", 3),
        ("/payments/notify/sandbox/", "orders:payment-notify", 4),
    ],
)
def test_url_paid_path_is_tried_first(path, view_name, most_tried):
    match = resolve(path)

    assert match.view_name == view_name
    assert len(match.tried) <= most_tried  # patterns tried, the match included
