"""Operator admin for orders and money: everything here is read-only.

Orders, payments and refunds change only through services (checkout, payment
notifies, refunds); the admin is where operators look, not where they write. The
one thing they may do is send a failed refund again (refund_retry), which needs
`orders.change_refund` although no refund field is ever editable.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Model, Prefetch, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from config.admin import ReadOnlyAdminMixin
from fulfillment.models import CardCode
from orders import alerts_admin as alerts_admin  # registers the alert admins
from orders import problems_admin as problems_admin  # registers the report admins
from orders.aftersales_admin import AfterSalesMixin
from orders.models import (
    Order,
    OrderEmail,
    OrderEvent,
    OrderLine,
    Payment,
    PaymentNotify,
    Refund,
    RefundLine,
    SandboxTrade,
)
from orders.review_admin import ReviewQueueFilter, ReviewQueueMixin
from orders.services import refund_retry

# Free text in list cells is cut to this many characters (a refund's reason can be
# a whole sentence for the shopper).
LIST_TEXT_CHARS = 24
MSG_REFUNDS_RETRIED = _("已重新提交 %(count)d 笔失败的退款。")
MSG_REFUNDS_SKIPPED = _("跳过 %(count)d 笔不是“失败”状态的退款：%(refunds)s")


def _refund_lines_prefetch() -> Prefetch:
    return Prefetch(
        "lines", queryset=RefundLine.objects.select_related("line").order_by("id")
    )


def _refund_line_amounts(refund: Refund) -> str:
    """Each refunded line and its amount (the refund's lines prefetched)."""
    lines = list(refund.lines.all())
    if not lines:
        return "—"  # a whole-payment refund (a second payment) names no line
    return format_html_join(
        "",
        '<div class="nowrap">{} × {}：¥{}</div>',
        ((x.line.sku_name, x.line.quantity, x.amount) for x in lines),
    )


def _shortened(text: str, chars: int) -> str:
    """A list cell's text: cut to `chars`, the whole of it on hover (the page has it too)."""
    # A minimum width: squeezed by the other columns, Chinese would wrap every word.
    return format_html(
        '<span style="display: inline-block; min-width: {}em" title="{}">{}</span>',
        min(chars, 12),
        text,
        Truncator(text).chars(chars),
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
        "line_id",
        "sku",
        "sku_name",
        "delivery",
        "status",
        "quantity",
        "amount",
        "discount_amount",
        "refunded_amount",
        "recharge_account",
        "bundle_parent",
        "delivered_as",
        "status_reason",
        "delivered_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderLine]:
        codes = CardCode.objects.only("id", "hint", "status", "order_line_id").order_by(
            "id"
        )
        return (
            super()
            .get_queryset(request)
            .select_related("sku", "parent", "topup")
            .prefetch_related(Prefetch("codes", queryset=codes))
        )

    @admin.display(description=_("明细"))
    def line_id(self, obj: OrderLine) -> str:
        return f"#{obj.pk}"

    @admin.display(description=_("所属组合包"))
    def bundle_parent(self, obj: OrderLine) -> str:
        if obj.parent is None:
            return "—"
        return f"#{obj.parent.pk} {obj.parent.sku_name}"

    @admin.display(description=_("发货内容"))
    def delivered_as(self, obj: OrderLine) -> str:
        """Masked codes, or the top-up (linked), or nothing (a bundle's own line)."""
        topup = getattr(obj, "topup", None) if obj.is_topup else None
        if topup is not None:
            return format_html(
                '<a href="{}">直充 #{}</a>（{}）',
                reverse("admin:fulfillment_topup_change", args=[topup.pk]),
                topup.pk,
                topup.get_status_display(),
            )
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
    show_change_link = True  # the refund's page is where a failed one is retried
    fields = (
        "created_at",
        "refund_no",
        "amount",
        "status",
        "actor_kind",
        "reason",
        "line_amounts",
        "attempts",
        "last_error",
        "completed_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Refund]:
        return (
            super()
            .get_queryset(request)
            .select_related("payment")
            .prefetch_related(_refund_lines_prefetch())
        )

    @admin.display(description=_("退款明细"))
    def line_amounts(self, obj: Refund) -> str:
        return _refund_line_amounts(obj)


@admin.register(Order)
class OrderAdmin(
    AfterSalesMixin, ReviewQueueMixin, ReadOnlyAdminMixin, admin.ModelAdmin
):
    # The risk review queue (approve / reject) lives in orders/review_admin.py,
    # the 售后 page (refund, 补单, confirm paid) in orders/aftersales_admin.py.
    list_display = (
        "number",
        "user__email",
        "status",
        "review_reason",
        "total_amount",
        "paid_amount",
        "refunded_amount",
        "created_at",
        "paid_at",
        "delivered_at",
    )
    list_filter = (
        ReviewQueueFilter,
        "status",
        ("user", admin.EmptyFieldListFilter),  # empty: guest orders
        "created_at",
    )
    actions = ("approve_review", "reject_review")
    list_select_related = ("user",)
    search_fields = ("=number", "email", "user__email")
    date_hierarchy = "created_at"
    fields = (
        "number",
        "user",
        "email",
        "status",
        ("total_amount", "paid_amount", "refunded_amount", "currency"),
        ("ip_address", "device_id"),
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
        "device_id",
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
        "refund_number",
        "order",
        "amount",
        "status_label",
        "actor_label",
        "short_reason",
        "line_amounts",
        "attempts",
        "short_error",
        "completed_at",
    )
    list_filter = ("status", "actor_kind", "created_at")
    list_select_related = ("order", "actor")
    search_fields = ("=refund_no", "=order__number")
    date_hierarchy = "created_at"
    actions = ("retry_failed_refunds",)
    fields = (
        "refund_no",
        "order",
        "payment",
        "amount",
        "currency",
        "line_amounts",
        "reason",
        "actor_kind",
        "actor",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "claimed_at",
        "completed_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Refund]:
        return (
            super()
            .get_queryset(request)
            .select_related("order", "payment", "actor")
            .prefetch_related(_refund_lines_prefetch())
        )

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.change_refund")

    @admin.display(description=_("退款明细"))
    def line_amounts(self, obj: Refund) -> str:
        return _refund_line_amounts(obj)

    @admin.display(description=_("退款单号"), ordering="refund_no")
    def refund_number(self, obj: Refund) -> str:
        # A 32-character token: its head tells refunds apart, the page has it whole.
        return format_html(
            '<code title="{}">{}…</code>', obj.refund_no, obj.refund_no[:10]
        )

    @admin.display(description=_("状态"), ordering="status")
    def status_label(self, obj: Refund) -> str:
        if obj.status == Refund.Status.FAILED:
            # Failed refunds wait for an operator: they must stand out.
            return format_html(
                '<strong style="color: var(--error-fg)">{}</strong>',
                obj.get_status_display(),
            )
        return obj.get_status_display()

    @admin.display(description=_("原因"))
    def short_reason(self, obj: Refund) -> str:
        return _shortened(obj.reason, LIST_TEXT_CHARS)

    @admin.display(description=_("最近错误"))
    def short_error(self, obj: Refund) -> str:
        return (
            _shortened(obj.last_error, LIST_TEXT_CHARS * 2) if obj.last_error else "—"
        )

    @admin.display(description=_("发起方"), ordering="actor_kind")
    def actor_label(self, obj: Refund) -> str:
        if obj.actor is None:
            return obj.get_actor_kind_display()
        return format_html(
            "{}<br><small>{}</small>", obj.get_actor_kind_display(), obj.actor
        )

    @admin.action(description=_("重试失败的退款"), permissions=["retry"])
    def retry_failed_refunds(
        self, request: HttpRequest, queryset: QuerySet[Refund]
    ) -> None:
        actor = request.user
        if not isinstance(actor, User):
            raise PermissionDenied
        retried = 0
        skipped: list[str] = []
        for refund_id, refund_no, status in queryset.order_by("pk").values_list(
            "pk", "refund_no", "status"
        ):
            # refund_retry itself only moves a failed refund (conditional UPDATE): a
            # refund that succeeded meanwhile is skipped here rather than sent twice.
            if status == Refund.Status.FAILED and refund_retry(
                refund_id=refund_id, actor=actor
            ):
                retried += 1
            else:
                skipped.append(refund_no)
        if retried:
            messages.success(request, MSG_REFUNDS_RETRIED % {"count": retried})
        if skipped:
            messages.warning(
                request,
                MSG_REFUNDS_SKIPPED
                % {"count": len(skipped), "refunds": ", ".join(skipped)},
            )


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
