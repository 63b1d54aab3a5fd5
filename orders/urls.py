from __future__ import annotations

from django.conf import settings
from django.urls import path

from orders import aftersales_views, guest_views, order_views, refund_views, views
from orders.gateways import sandbox_views, wechat_page

app_name = "orders"
urlpatterns = [
    path("checkout/", views.checkout, name="checkout"),
    path("orders/", order_views.order_list, name="order-list"),
    # Guest orders (orders/guest.py): before <number>, which would take "lookup".
    path("orders/lookup/", guest_views.order_lookup, name="order-lookup"),
    path("orders/claim/", guest_views.guest_orders_claim, name="guest-claim"),
    path("orders/<str:number>/", order_views.order_detail, name="order-detail"),
    path("orders/<str:number>/pay/", views.order_pay, name="order-pay"),
    path(
        "orders/<str:number>/codes/<int:code_id>/reveal/",
        order_views.code_reveal,
        name="code-reveal",
    ),
    path(
        "orders/<str:number>/lines/<int:line_id>/refund/",
        aftersales_views.line_refund,
        name="line-refund",
    ),
    path(
        "orders/<str:number>/lines/<int:line_id>/report/",
        aftersales_views.line_report,
        name="line-report",
    ),
    path("pay/wechat/<str:token>/", wechat_page.wechat_pay, name="wechat-pay"),
    path(
        "pay/wechat/<str:token>/status/",
        wechat_page.wechat_pay_status,
        name="wechat-pay-status",
    ),
    path("payments/notify/<str:gateway>/", views.payment_notify, name="payment-notify"),
    path(
        "payments/notify/<str:gateway>/refund/",
        refund_views.refund_notify,
        name="refund-notify",
    ),
]
# The sandbox's hosted page exists only while the sandbox gateway is enabled.
if settings.PAYMENT_SANDBOX_ENABLED:
    urlpatterns.append(
        path("pay/sandbox/<str:token>/", sandbox_views.sandbox_pay, name="sandbox-pay")
    )
