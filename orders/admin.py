"""Operator admin for orders and money: everything here is read-only.

Orders, payments and refunds change only through services (checkout, payment
notifies, refunds); the admin is where operators look, not where they write.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import Model, Prefetch, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from config.admin import ReadOnlyAdminMixin
from fulfillment.models import CardCode
from orders.models import (
    Order,
    OrderEmail,
    OrderEvent,
    OrderLine,
    Payment,
    PaymentNotify,
    Refund,
    SandboxTrade,
)


def _pretty_json(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)
    return format_html('<pre style="white-space: pre-wrap">{}</pre>', text)


class ReadOnlyTabularInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def get_readonly_fields(
        self, request: HttpRequest, obj: Model | None = None
    ) -> Any:
        return self.fields


class OrderLineInline(ReadOnlyTabularInline):
    model = OrderLine
    fields = (
        "sku",
        "product_name",
        "sku_name",
        "quantity",
        "unit_price",
        "amount",
        "code_hints",
        "delivered_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderLine]:
        codes = CardCode.objects.only("id", "hint", "status", "order_line_id").order_by(
            "id"
        )
        return (
            super()
            .get_queryset(request)
            .select_related("sku")
            .prefetch_related(Prefetch("codes", queryset=codes))
        )

    @admin.display(description=_("卡密（掩码）"))
    def code_hints(self, obj: OrderLine) -> str:
        codes = list(obj.codes.all())
        if not codes:
            return "—"
        return format_html_join(
            ", ",
            "<code>{}</code> ({})",
            ((c.hint, c.get_status_display()) for c in codes),
        )


class OrderEventInline(ReadOnlyTabularInline):
    model = OrderEvent
    fields = ("created_at", "kind", "actor", "detail_json")

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderEvent]:
        return super().get_queryset(request).select_related("actor")

    @admin.display(description=_("详情"))
    def detail_json(self, obj: OrderEvent) -> str:
        return _pretty_json(obj.detail) if obj.detail else "—"


class PaymentInline(ReadOnlyTabularInline):
    model = Payment
    fields = ("created_at", "gateway", "trade_no", "amount", "currency", "status")


class RefundInline(ReadOnlyTabularInline):
    model = Refund
    fields = (
        "created_at",
        "refund_no",
        "payment",
        "amount",
        "currency",
        "reason",
        "status",
        "completed_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Refund]:
        return super().get_queryset(request).select_related("payment")


@admin.register(Order)
class OrderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "number",
        "user__email",
        "status",
        "total_amount",
        "paid_amount",
        "refunded_amount",
        "created_at",
        "paid_at",
        "delivered_at",
    )
    list_filter = ("status", "created_at")
    list_select_related = ("user",)
    search_fields = ("=number", "email", "user__email")
    date_hierarchy = "created_at"
    fields = (
        "number",
        "user",
        "email",
        "status",
        ("total_amount", "paid_amount", "refunded_amount", "currency"),
        "ip_address",
        "created_at",
        "expires_at",
        "paid_at",
        "delivered_at",
        "cancelled_at",
    )
    readonly_fields = (
        "number",
        "user",
        "email",
        "status",
        "total_amount",
        "paid_amount",
        "refunded_amount",
        "currency",
        "ip_address",
        "created_at",
        "expires_at",
        "paid_at",
        "delivered_at",
        "cancelled_at",
    )
    inlines = (OrderLineInline, PaymentInline, RefundInline, OrderEventInline)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Order]:
        return super().get_queryset(request).select_related("user")


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "order",
        "gateway",
        "trade_no",
        "amount",
        "currency",
        "status",
    )
    list_filter = ("status", "gateway", "created_at")
    list_select_related = ("order",)
    search_fields = ("=order__number", "=trade_no")
    date_hierarchy = "created_at"
    fields = (
        "order",
        "gateway",
        "trade_no",
        "amount",
        "currency",
        "status",
        "created_at",
    )
    readonly_fields = fields


@admin.register(PaymentNotify)
class PaymentNotifyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "gateway",
        "out_trade_no",
        "trade_no",
        "outcome",
        "message",
        "remote_addr",
    )
    list_filter = ("outcome", "gateway", "created_at")
    search_fields = ("=out_trade_no", "=trade_no", "=notify_id")
    date_hierarchy = "created_at"
    fields = (
        "created_at",
        "gateway",
        "outcome",
        "message",
        "order",
        "out_trade_no",
        "trade_no",
        "notify_id",
        "remote_addr",
        "payload_json",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[PaymentNotify]:
        return super().get_queryset(request).select_related("order")

    @admin.display(description=_("通知内容"))
    def payload_json(self, obj: PaymentNotify) -> str:
        return _pretty_json(obj.payload)


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "refund_no",
        "order",
        "amount",
        "currency",
        "status",
        "reason",
        "completed_at",
    )
    list_filter = ("status", "created_at")
    list_select_related = ("order",)
    search_fields = ("=refund_no", "=order__number")
    date_hierarchy = "created_at"
    fields = (
        "refund_no",
        "order",
        "payment",
        "amount",
        "currency",
        "reason",
        "status",
        "created_at",
        "completed_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Refund]:
        return super().get_queryset(request).select_related("order", "payment")


@admin.register(OrderEmail)
class OrderEmailAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "order",
        "kind",
        "to",
        "status",
        "attempts",
        "sent_at",
    )
    list_filter = ("status", "kind")
    list_select_related = ("order",)
    search_fields = ("=order__number", "to")
    fields = (
        "order",
        "kind",
        "to",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "queued_at",
        "claimed_at",
        "sent_at",
    )
    readonly_fields = fields


@admin.register(SandboxTrade)
class SandboxTradeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "trade_no",
        "out_trade_no",
        "total_amount",
        "refunded_amount",
        "status",
    )
    list_filter = ("status",)
    search_fields = ("=trade_no", "=out_trade_no")
    # The pay-page token is a bearer secret for the sandbox checkout: not shown.
    fields = (
        "trade_no",
        "out_trade_no",
        "subject",
        "total_amount",
        "refunded_amount",
        "refund_nos",
        "status",
        "notify_url",
        "return_url",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
