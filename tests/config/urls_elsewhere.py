"""A second URL configuration: the shop under /shop/ (tests/config/test_urls.py)."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [path("shop/", include("orders.urls"))]
