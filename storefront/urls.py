from __future__ import annotations

from django.urls import path

from storefront import views

app_name = "storefront"
urlpatterns = [
    path("", views.home, name="home"),
    path("p/<slug:slug>/", views.product_detail, name="product-detail"),
    # A reseller's sub-store (分站): the catalog at their prices (SPEC §4.3).
    path("s/<slug:store>/", views.substore_home, name="substore-home"),
    path(
        "s/<slug:store>/p/<slug:slug>/",
        views.substore_product,
        name="substore-product",
    ),
]
