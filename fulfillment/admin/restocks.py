"""Supplier card restocks (自动补货): the list operators watch, and two actions.

Everything here is read-only: a restock is opened by the beat check and moved by
the worker (fulfillment.services.restock). No card plaintext is ever on a
restock; its cards are in the linked batch, in the vault. The two actions call
the services, which refuse anything that could buy twice or drop paid cards:
"query again now" (clears the operator flag) and "close" (only a restock the
engine stopped on). They need `fulfillment.change_cardrestock`, which on this
otherwise unchangeable model means "may operate".
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from config.admin import ReadOnlyAdminMixin
from config.lib.errors import DomainError
from fulfillment.admin._common import _staff_user
from fulfillment.models import CardRestock
from fulfillment.services import card_restock_close, card_restock_retry_now

MSG_RETRIED = _("已安排立即查询 %(count)d 个补货单。")
MSG_CLOSED = _("已关闭 %(count)d 个补货单。")
MSG_REFUSED = _("补货单 %(number)s：%(error)s")
MSG_NOT_OPEN = _("该补货单已结束")


@admin.register(CardRestock)
class CardRestockAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "customer_order_no",
        "sku",
        "supplier",
        "quantity",
        "unit_cost",
        "status",
        "needs_attention",
        "batch_link",
        "error",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "needs_attention", "supplier")
    list_select_related = ("sku", "supplier", "batch")
    search_fields = ("customer_order_no", "supplier_order_id", "sku__code")
    date_hierarchy = "created_at"
    raw_id_fields = ("sku", "supplier", "supplier_product", "batch")
    actions = ("retry_now", "close")

    @admin.display(description=_("入库批次"))
    def batch_link(self, obj: CardRestock) -> str:
        if obj.batch_id is None:
            return "—"
        return format_html(
            '<a href="{}">#{}</a>',
            reverse("admin:fulfillment_codebatch_change", args=[obj.batch_id]),
            obj.batch_id,
        )

    @admin.display(description=_("错误"))
    def error(self, obj: CardRestock) -> str:
        code = f"{obj.error_code} " if obj.error_code is not None else ""
        return f"{code}{obj.last_error}".strip() or "—"

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("fulfillment.change_cardrestock")

    @admin.action(description=_("立即查询（清除人工标记）"), permissions=["operate"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[CardRestock]) -> None:
        actor = _staff_user(request)
        done = 0
        for restock in queryset:
            if card_restock_retry_now(restock_id=restock.pk, actor=actor):
                done += 1
            else:
                self._refused(request, restock, str(MSG_NOT_OPEN))
        if done:
            messages.success(request, MSG_RETRIED % {"count": done})

    @admin.action(description=_("关闭（已与供应商人工处理）"), permissions=["operate"])
    def close(self, request: HttpRequest, queryset: QuerySet[CardRestock]) -> None:
        actor = _staff_user(request)
        done = 0
        for restock in queryset:
            try:
                card_restock_close(restock_id=restock.pk, actor=actor)
            except DomainError as exc:
                self._refused(request, restock, exc.message)
            else:
                done += 1
        if done:
            messages.success(request, MSG_CLOSED % {"count": done})

    @staticmethod
    def _refused(request: HttpRequest, restock: CardRestock, error: Any) -> None:
        messages.error(
            request,
            MSG_REFUSED % {"number": restock.customer_order_no, "error": error},
        )
