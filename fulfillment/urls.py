from __future__ import annotations

from django.urls import path

from fulfillment import views

app_name = "fulfillment"
urlpatterns = [
    path(
        "suppliers/callback/<str:supplier>/",
        views.supplier_callback,
        name="supplier-callback",
    ),
]
