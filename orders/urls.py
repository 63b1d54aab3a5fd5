from __future__ import annotations

from django.urls import path

from orders import views

app_name = "orders"
urlpatterns = [
    path("checkout/", views.checkout, name="checkout"),
    path("orders/", views.order_list, name="order-list"),
    path("orders/<str:number>/", views.order_detail, name="order-detail"),
    path("orders/<str:number>/pay/", views.order_pay, name="order-pay"),
    path(
        "orders/<str:number>/codes/<int:code_id>/reveal/",
        views.code_reveal,
        name="code-reveal",
    ),
    path("pay/sandbox/<str:token>/", views.sandbox_pay, name="sandbox-pay"),
    path("payments/notify/<str:gateway>/", views.payment_notify, name="payment-notify"),
]
