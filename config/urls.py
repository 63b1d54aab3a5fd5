from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from config import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    # The partner API (SPEC §4.4): django-ninja, distribution/api/.
    path("api/v1/", include("distribution.api.urls")),
    path("accounts/", include("allauth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    # The checkout captcha's images (django-simple-captcha, self-hosted).
    path("captcha/", include("captcha.urls")),
    path("reseller/", include("distribution.urls")),
    path("", include("orders.urls")),
    path("", include("fulfillment.urls")),
    path("", include("storefront.urls")),
]

# JSON for /api/ paths (a partner client never gets an HTML page), the page otherwise.
handler404 = "config.views.page_not_found"
