"""Top-up admin: the list operators work from, each top-up's timeline, and the
three things an operator may do to one (retry now, fail over, refund).

Everything on these pages is read-only; the actions call the services
(fulfillment.services.topup_retry_now / topup_fail_over / topup_refund), which
refuse whatever could buy a top-up twice or refund one a supplier may still
deliver. A refusal is shown as a message, never as an error page. The actions
need `fulfillment.change_topup`: the model declares no permission of its own, and
nothing else on a top-up is changeable, so "change" means "may operate".

Request and reply payloads are stored redacted by the supplier adapter; the
timeline masks signatures and card secrets again before rendering (_common).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext_lazy as _

from config.admin import ReadOnlyAdminMixin
from config.lib.errors import DomainError
from fulfillment.admin._common import _staff_user, pretty_json
from fulfillment.models import Supplier, SupplierAttempt, TopUp
from fulfillment.selectors import (
    TIMELINE_MAX_EVENTS,
    TOPUP_OPEN_STATUSES,
    topup_attempt_list,
    topup_list_for_admin,
    topup_needs_human_q,
    topup_timeline,
)
from fulfillment.services import topup_fail_over, topup_refund, topup_retry_now

MSG_DONE = _("%(action)s：已处理 %(count)d 个直充。")
MSG_REFUSED = _("直充 #%(id)s（订单 %(order)s）未能%(action)s：%(error)s")
# topup_retry_now answers False rather than raising when there is nothing to retry.
MSG_NOTHING_TO_RETRY = _("该直充已完成或正在处理中，无需重试")


def _masked_account(account: str) -> str:
    """Readable, not whole, on a list: 123456789 → 123***789, 13812345678 → 138****5678."""
    if len(account) <= 6:
        return account
    tail = 4 if len(account) >= 10 else 3
    return account[:3] + "*" * (len(account) - 3 - tail) + account[-tail:]


def attempt_error(attempt: SupplierAttempt) -> str:
    """The attempt's last error, led by its code (the engine's text often is already)."""
    if not attempt.last_error:
        return "—"
    code = str(attempt.error_code) if attempt.error_code is not None else ""
    if code and not attempt.last_error.startswith(code):
        return f"{code} {attempt.last_error}"
    return attempt.last_error


# --- Operations -----------------------------------------------------------------


@dataclass(frozen=True)
class _Operation:
    slug: str
    label: Any  # a lazy translation
    service: Callable[..., bool]
    danger: bool = False


OPERATIONS = (
    _Operation("retry", _("立即重试"), topup_retry_now),
    _Operation("fail-over", _("切换供应商"), topup_fail_over),
    _Operation("refund", _("退款"), topup_refund, danger=True),
)
_BY_SLUG = {op.slug: op for op in OPERATIONS}


def _operate(
    request: HttpRequest, operation: _Operation, topups: list[tuple[int, str]]
) -> int:
    """Run one operation on each top-up; every refusal becomes an error message."""
    actor = _staff_user(request)
    done = 0
    for topup_id, order_number in topups:
        try:
            applied = operation.service(topup_id=topup_id, actor=actor)
            error = "" if applied else str(MSG_NOTHING_TO_RETRY)
        except DomainError as exc:
            error = exc.message
        if error:
            messages.error(
                request,
                MSG_REFUSED
                % {
                    "id": topup_id,
                    "order": order_number,
                    "action": operation.label,
                    "error": error,
                },
            )
        else:
            done += 1
    if done:
        messages.success(request, MSG_DONE % {"action": operation.label, "count": done})
    return done


# --- Filters --------------------------------------------------------------------


class NeedsHumanFilter(admin.SimpleListFilter):
    """The "needs a human" view: flagged, or open past the deadline."""

    title = _("待人工处理（已标记，或未完成且已超过到账期限）")
    parameter_name = "human"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin
    ) -> list[tuple[str, Any]]:
        return [("yes", _("只看待人工处理的直充"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        if self.value() == "yes":
            return queryset.filter(topup_needs_human_q(now=timezone.now()))
        return None


class AgeFilter(admin.SimpleListFilter):
    title = _("创建至今")
    parameter_name = "age"
    # (value, label, newer than, older than)
    BANDS: tuple[tuple[str, Any, dt.timedelta | None, dt.timedelta | None], ...] = (
        ("lt5m", _("5 分钟内"), dt.timedelta(minutes=5), None),
        ("5to30m", _("5–30 分钟"), dt.timedelta(minutes=30), dt.timedelta(minutes=5)),
        ("gt30m", _("超过 30 分钟"), None, dt.timedelta(minutes=30)),
        ("gt1d", _("超过 1 天"), None, dt.timedelta(days=1)),
    )

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin
    ) -> list[tuple[str, Any]]:
        return [(value, label) for value, label, _newer, _older in self.BANDS]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        now = timezone.now()
        for value, _label, newer, older in self.BANDS:
            if self.value() == value:
                if newer is not None:
                    queryset = queryset.filter(created_at__gt=now - newer)
                if older is not None:
                    queryset = queryset.filter(created_at__lte=now - older)
                return queryset
        return None


class AttemptSupplierFilter(admin.SimpleListFilter):
    """Top-ups any of whose attempts went to this supplier."""

    title = _("供应商")
    parameter_name = "supplier"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin
    ) -> list[tuple[str, Any]]:
        return [
            (str(pk), name) for pk, name in Supplier.objects.values_list("pk", "name")
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet | None:
        value = self.value()
        if not value:
            return None
        if not value.isdigit():
            return queryset.none()
        # EXISTS, not a join: a top-up tried twice at one supplier is listed once.
        tried = SupplierAttempt.objects.filter(topup=OuterRef("pk"), supplier_id=value)
        return queryset.filter(Exists(tried))


# --- The top-up admin -----------------------------------------------------------


@admin.register(TopUp)
class TopUpAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "order_number",
        "sku_code",
        "account",
        "status",
        "attempts",
        "current_supplier",
        "age",
        "next_poll",
        "needs_attention",
    )
    list_display_links = ("id",)
    list_filter = (
        NeedsHumanFilter,
        "status",
        AttemptSupplierFilter,
        AgeFilter,
        "needs_attention",
    )
    search_fields = (
        "=order_line__order__number",
        "=attempts__customer_order_no",
        "=recharge_account",
    )
    search_help_text = _("按订单号、供应商请求单号或充值账号（完整）搜索")
    # Skip the unfiltered COUNT(*) and the per-filter facet counts on a growing table.
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100
    actions = ("retry_now", "fail_over", "refund")
    change_form_template = "admin/fulfillment/topup/change_form.html"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "order_number",
                    "order_line_status",
                    "sku",
                    "recharge_account",
                    "quantity",
                    "status",
                )
            },
        ),
        (
            _("处理"),
            {
                "fields": (
                    ("needs_attention", "attention_note"),
                    ("fail_code", "fail_reason"),
                    "steps",
                    "next_poll_at",
                    "lease_until",
                    "deadline_at",
                )
            },
        ),
        (_("时间"), {"fields": ("created_at", "updated_at", "finished_at")}),
    )
    readonly_fields = (
        "order_number",
        "order_line_status",
        "sku",
        "recharge_account",
        "quantity",
        "status",
        "needs_attention",
        "attention_note",
        "fail_code",
        "fail_reason",
        "steps",
        "next_poll_at",
        "lease_until",
        "deadline_at",
        "created_at",
        "updated_at",
        "finished_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[TopUp]:
        qs = topup_list_for_admin()
        ordering = self.get_ordering(request)
        return qs.order_by(*ordering) if ordering else qs

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("fulfillment.change_topup")

    # --- columns ---

    @admin.display(description=_("订单号"), ordering="order_line__order__number")
    def order_number(self, obj: TopUp) -> str:
        order = obj.order_line.order
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:orders_order_change", args=[order.pk]),
            order.number,
        )

    @admin.display(description=_("明细状态"))
    def order_line_status(self, obj: TopUp) -> str:
        return obj.order_line.get_status_display()

    @admin.display(description=_("SKU"), ordering="sku__code")
    def sku_code(self, obj: TopUp) -> str:
        # Unbroken: a code split at its hyphens over three lines is hard to read.
        return format_html('<span class="nowrap">{}</span>', obj.sku.code)

    @admin.display(description=_("充值账号"), ordering="recharge_account")
    def account(self, obj: TopUp) -> str:
        return _masked_account(obj.recharge_account)

    @admin.display(description=_("请求次数"), ordering="attempt_count")
    def attempts(self, obj: TopUp) -> int:
        return int(obj.attempt_count)  # type: ignore[attr-defined]

    @admin.display(description=_("当前供应商"))
    def current_supplier(self, obj: TopUp) -> str:
        name = obj.current_supplier_name  # type: ignore[attr-defined]
        return format_html('<span class="nowrap">{}</span>', name) if name else "—"

    @admin.display(description=_("已过时间"), ordering="created_at")
    def age(self, obj: TopUp) -> str:
        now = timezone.now()
        text = timesince(obj.created_at, now)
        if obj.status in TOPUP_OPEN_STATUSES and obj.deadline_at <= now:
            return format_html(
                '<strong style="color: var(--error-fg)" title="{}">{}</strong>',
                _("已超过到账期限"),
                text,
            )
        return text

    @admin.display(description=_("下次处理"), ordering="next_poll_at")
    def next_poll(self, obj: TopUp) -> str:
        if obj.next_poll_at is None or not obj.is_open:
            return "—"
        now = timezone.now()
        if obj.next_poll_at <= now:
            return str(_("已到期"))
        return str(_("%(delay)s后") % {"delay": timeuntil(obj.next_poll_at, now)})

    # --- actions ---

    def _selected(self, queryset: QuerySet[TopUp]) -> list[tuple[int, str]]:
        return list(
            queryset.order_by("pk").values_list("pk", "order_line__order__number")
        )

    @admin.action(
        description=_("立即重试（按当前单号查询或提交）"), permissions=["operate"]
    )
    def retry_now(self, request: HttpRequest, queryset: QuerySet[TopUp]) -> None:
        _operate(request, _BY_SLUG["retry"], self._selected(queryset))

    @admin.action(description=_("切换到下一个供应商"), permissions=["operate"])
    def fail_over(self, request: HttpRequest, queryset: QuerySet[TopUp]) -> None:
        _operate(request, _BY_SLUG["fail-over"], self._selected(queryset))

    @admin.action(description=_("停止并退款"), permissions=["operate"])
    def refund(self, request: HttpRequest, queryset: QuerySet[TopUp]) -> None:
        _operate(request, _BY_SLUG["refund"], self._selected(queryset))

    # --- the detail page ---

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {**(extra_context or {})}
        if object_id.isdigit():
            topup_id = int(object_id)
            # One more than shown: whether older events exist, without a COUNT.
            timeline = topup_timeline(topup_id=topup_id, limit=TIMELINE_MAX_EVENTS + 1)
            truncated = len(timeline) > TIMELINE_MAX_EVENTS
            timeline = timeline[-TIMELINE_MAX_EVENTS:]
            attempts = topup_attempt_list(topup_id=topup_id)
            for attempt in attempts:
                attempt.error_text = attempt_error(attempt)  # type: ignore[attr-defined]
            extra_context |= {
                "attempts": attempts,
                "timeline": [
                    {
                        "event": event,
                        "request_json": pretty_json(event.request)
                        if event.request is not None
                        else "",
                        "response_json": pretty_json(event.response)
                        if event.response is not None
                        else "",
                    }
                    for event in timeline
                ],
                "timeline_truncated": truncated,
                "timeline_max": TIMELINE_MAX_EVENTS,
                # The template offers them only while the top-up is open.
                "operations": OPERATIONS
                if self.has_operate_permission(request)
                else (),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self) -> list[URLPattern]:
        operate = path(
            "<path:object_id>/operate/<slug:operation>/",
            self.admin_site.admin_view(self.operate_view),
            name="fulfillment_topup_operate",
        )
        # Before the defaults: their "<path:object_id>/" catch-all would swallow it.
        return [operate, *super().get_urls()]

    def operate_view(
        self, request: HttpRequest, object_id: str, operation: str
    ) -> HttpResponse:
        """POST only: one operation on one top-up, then back to its page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_operate_permission(request):
            raise PermissionDenied
        op = _BY_SLUG.get(operation)
        topup = self.get_object(request, unquote(object_id))
        if op is None or topup is None:
            raise Http404
        _operate(request, op, [(topup.pk, topup.order_line.order.number)])
        return HttpResponseRedirect(
            reverse("admin:fulfillment_topup_change", args=[topup.pk])
        )


@admin.register(SupplierAttempt)
class SupplierAttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every order placed with a supplier, to look one up by either side's number."""

    list_display = (
        "customer_order_no",
        "topup_link",
        "supplier",
        "product_id",
        "unit_cost",
        "status",
        "supplier_order_id",
        "error",
        "placements",
        "queries",
        "created_at",
    )
    list_filter = ("status", "supplier")
    list_select_related = ("supplier", "topup")
    search_fields = (
        "=customer_order_no",
        "=supplier_order_id",
        "=topup__order_line__order__number",
    )
    search_help_text = _("按请求单号、供应商单号或订单号（完整）搜索")
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100
    fields = (
        "topup_link",
        "supplier",
        "supplier_product",
        "customer_order_no",
        "product_id",
        "unit_cost",
        "status",
        "supplier_order_id",
        "supplier_state",
        "error_code",
        "last_error",
        "placements",
        "queries",
        "placement_deadline",
        "created_at",
        "placed_at",
        "finished_at",
    )
    readonly_fields = fields

    @admin.display(description=_("直充"), ordering="topup_id")
    def topup_link(self, obj: SupplierAttempt) -> str:
        return format_html(
            '<a class="nowrap" href="{}">#{} {}</a>',
            reverse("admin:fulfillment_topup_change", args=[obj.topup_id]),
            obj.topup_id,
            obj.topup.get_status_display(),
        )

    @admin.display(description=_("错误"))
    def error(self, obj: SupplierAttempt) -> str:
        if not obj.last_error:
            return "—"
        return (
            f"{obj.error_code} {obj.last_error}" if obj.error_code else obj.last_error
        )
