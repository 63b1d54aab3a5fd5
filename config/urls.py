from __future__ import annotations

from collections.abc import Sequence

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

from config import views
from orders import urls as orders_urls

# The paid path's routes, tried first in their configuration: Django tries a
# URL's patterns in order, each failed one costing a few Python calls, and these
# three answer most requests that carry SQL. None of them can match a path any
# pattern they move ahead of matches (each has a literal segment of its own),
# which tests/config/test_url_order.py checks for every route.
HOT_ORDER_ROUTES = ("checkout", "sandbox-pay", "payment-notify")


def hot_first(
    patterns: Sequence[URLPattern | URLResolver], names: tuple[str, ...]
) -> list[URLPattern | URLResolver]:
    """`patterns` with those named in `names` first, in that order; the rest as they were."""
    hot = {p.name: p for p in patterns if isinstance(p, URLPattern) and p.name in names}
    first = [hot[name] for name in names if name in hot]
    return first + [p for p in patterns if p not in first]


# Ordered by traffic, not by importance: the shop's own pages first (the paid
# path, then the storefront's home and product pages), then the prefixed apps.
# No two entries match the same path (the prefixes are distinct literals and the
# unprefixed includes' routes start with none of them), so the order decides the
# cost of a match only, never where a URL goes (tests/config/test_url_order.py).
urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path(
        "",
        include(
            (hot_first(orders_urls.urlpatterns, HOT_ORDER_ROUTES), orders_urls.app_name)
        ),
    ),
    path("", include("storefront.urls")),
    path("admin/", admin.site.urls),
    # The partner API (SPEC §4.4): django-ninja, distribution/api/.
    path("api/v1/", include("distribution.api.urls")),
    path("accounts/", include("allauth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    # The checkout captcha's images (django-simple-captcha, self-hosted).
    path("captcha/", include("captcha.urls")),
    path("reseller/", include("distribution.urls")),
    path("", include("fulfillment.urls")),
]

# JSON for /api/ paths (a partner client never gets an HTML page), the page otherwise.
handler404 = "config.views.page_not_found"
