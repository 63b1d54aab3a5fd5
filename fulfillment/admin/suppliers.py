"""Supplier admin: credentials in, balance and product health out.

The signing secret is write-only: a password field that never renders a value
(blank on every page load, blank on a failed submit), where leaving it blank
keeps the sealed secret. Saves go through the services (supplier_register,
supplier_map) so the admin, the commands and any script seal and validate the
same way. The refresh action calls the suppliers over the network; Django runs
admin actions outside a transaction, so no row is held meanwhile.

Health (requests, success rate, p50/p95 latency and the last failed request over
the last hour and day) comes from the top-up timeline through one selector,
computed once per page for all suppliers (SupplierChangeList), never per row.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from catalog.models import Sku
from fulfillment.models import Supplier, SupplierProduct
from fulfillment.selectors import SupplierHealth, supplier_health
from fulfillment.services import supplier_map, supplier_refresh, supplier_register
from fulfillment.services.suppliers import ERR_BUNDLE_SKU, ERR_SECRET_REQUIRED

MSG_REFRESHED = _("已刷新 %(name)s：余额 %(balance)s")
MSG_REFRESH_FAILED = _("%(name)s 刷新出错：%(error)s")

HEALTH_WINDOWS = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1)}
# Below this success rate the figure is shown as an alarm.
HEALTH_SUCCESS_ALARM = 0.9


def _health_of(suppliers: list[Supplier]) -> None:
    """Attach `health_hour` / `health_day` to each supplier: 2 selector calls in all."""
    now = timezone.now()
    for window, span in HEALTH_WINDOWS.items():
        health = supplier_health(since=now - span)
        for supplier in suppliers:
            setattr(supplier, f"health_{window}", health.get(supplier.pk))


def _health(obj: Supplier, window: str) -> SupplierHealth | None:
    if not hasattr(obj, f"health_{window}"):  # the detail page: no changelist ran
        _health_of([obj])
    health: SupplierHealth | None = getattr(obj, f"health_{window}")
    return health


def _health_html(health: SupplierHealth | None) -> str:
    if health is None or not health.requests:
        return str(_("无请求"))
    rate = health.success_rate or 0.0
    alarm = rate < HEALTH_SUCCESS_ALARM
    return format_html(
        str(
            _(
                '<span class="nowrap">{requests} 次 · '
                '<span style="{style}">成功 {rate}%</span></span>'
                '<br><small class="nowrap">p50 {p50} · p95 {p95}</small>'
            )
        ),
        requests=health.requests,
        style="color: var(--error-fg); font-weight: bold" if alarm else "",
        rate=f"{rate * 100:.1f}",
        p50=_ms(health.p50_ms),
        p95=_ms(health.p95_ms),
    )


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    # Half up, once the float noise of percentile_cont is gone (95.4999… is 95.5).
    exact = Decimal(value).quantize(Decimal("0.001"))
    return f"{exact.quantize(Decimal(1), ROUND_HALF_UP)} ms"


def _when(moment: dt.datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")


class SupplierChangeList(ChangeList):
    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        _health_of(list(self.result_list))


class SupplierAdminForm(forms.ModelForm):
    base_url = forms.URLField(
        label=_("接口地址"), max_length=200, assume_scheme="https"
    )
    secret = forms.CharField(
        label=_("密钥"),
        required=False,
        strip=True,
        # render_value=False: the secret never goes back to the browser, not even
        # after a submit that failed validation.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("只写：留空则保留已保存的密钥。"),
    )

    class Meta:
        model = Supplier
        fields = ("name", "adapter", "base_url", "app_key", "priority", "is_enabled")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.instance.pk is None and not cleaned.get("secret"):
            self.add_error("secret", ERR_SECRET_REQUIRED)
        return cleaned


@admin.register(Supplier)
class SupplierAdmin(admin.ModelAdmin):
    form = SupplierAdminForm
    # Narrow enough to read without scrolling: the adapter is a filter (and on the
    # detail page), the balance carries the time it was checked.
    list_display = (
        "name",
        "priority",
        "is_enabled",
        "balance",
        "last_error",
        "health_hour",
        "health_day",
        "last_request_error",
    )
    list_filter = ("is_enabled", "adapter")
    search_fields = ("name", "app_key")
    ordering = ("priority", "id")
    actions = ("refresh_now",)
    readonly_fields = (
        "last_balance",
        "balance_checked_at",
        "last_error",
        "health_hour",
        "health_day",
        "last_request_error",
        "created_at",
        "updated_at",
    )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return SupplierChangeList

    @admin.display(description=_("余额（查询时间）"), ordering="last_balance")
    def balance(self, obj: Supplier) -> str:
        if obj.last_balance is None:
            return "—"
        checked = (
            _when(obj.balance_checked_at) if obj.balance_checked_at else _("未查询")
        )
        return format_html(
            '<span class="nowrap">{} {}</span><br><small class="nowrap">{}</small>',
            obj.last_balance,
            obj.currency,
            checked,
        )

    @admin.display(description=_("最近 1 小时"))
    def health_hour(self, obj: Supplier) -> str:
        return _health_html(_health(obj, "hour"))

    @admin.display(description=_("最近 1 天"))
    def health_day(self, obj: Supplier) -> str:
        return _health_html(_health(obj, "day"))

    @admin.display(description=_("最近请求错误（1 天内）"))
    def last_request_error(self, obj: Supplier) -> str:
        health = _health(obj, "day")
        if health is None or not health.last_error:
            return "—"
        return format_html(
            "{}<br><small>{}</small>",
            health.last_error,
            _when(health.last_error_at) if health.last_error_at else "",
        )

    def get_fields(
        self, request: HttpRequest, obj: Supplier | None = None
    ) -> tuple[str, ...]:
        # Explicit: secret_ciphertext and secret_key_id never reach a page.
        editable: tuple[str, ...] = ("name", "adapter", "base_url", "app_key")
        editable += ("secret", "priority", "is_enabled")
        return editable + (self.readonly_fields if obj else ())

    def get_readonly_fields(
        self, request: HttpRequest, obj: Supplier | None = None
    ) -> tuple[str, ...]:
        # The service is idempotent by name: renaming would register a second supplier.
        if obj is not None:
            return ("name", *self.readonly_fields)
        return self.readonly_fields

    def has_delete_permission(
        self, request: HttpRequest, obj: Supplier | None = None
    ) -> bool:
        # Mappings and top-ups reference suppliers; switch one off instead.
        return False

    def save_model(
        self, request: HttpRequest, obj: Supplier, form: forms.Form, change: bool
    ) -> None:
        saved = supplier_register(
            name=obj.name,
            base_url=obj.base_url,
            app_key=obj.app_key,
            secret=form.cleaned_data.get("secret") or None,
            priority=obj.priority,
            enabled=obj.is_enabled,
            adapter=obj.adapter,
        )
        # The admin goes on with `obj` (messages, log entry, redirect).
        obj.pk = saved.pk
        obj.refresh_from_db()

    @admin.action(description=_("立即刷新余额和商品"), permissions=["change"])
    def refresh_now(self, request: HttpRequest, queryset: QuerySet[Supplier]) -> None:
        for supplier_id in queryset.order_by("pk").values_list("pk", flat=True):
            supplier = supplier_refresh(supplier_id=supplier_id)
            if supplier.last_error:
                self.message_user(
                    request,
                    MSG_REFRESH_FAILED
                    % {"name": supplier.name, "error": supplier.last_error},
                    messages.WARNING,
                )
            else:
                self.message_user(
                    request,
                    MSG_REFRESHED
                    % {"name": supplier.name, "balance": supplier.last_balance},
                    messages.SUCCESS,
                )


class SupplierProductAdminForm(forms.ModelForm):
    class Meta:
        model = SupplierProduct
        fields = ("supplier", "sku", "product_id", "cost", "priority", "is_enabled")

    def clean_sku(self) -> Sku:
        sku: Sku = self.cleaned_data["sku"]
        if sku.delivery == Sku.Delivery.BUNDLE:
            raise forms.ValidationError(ERR_BUNDLE_SKU % {"sku": sku.code})
        return sku


@admin.register(SupplierProduct)
class SupplierProductAdmin(admin.ModelAdmin):
    form = SupplierProductAdminForm
    list_display = (
        "sku",
        "supplier",
        "product_id",
        "cost",
        "priority",
        "is_enabled",
        "supplier_status",
        "supplier_stock",
        "checked_at",
    )
    list_editable = ("cost", "priority", "is_enabled")
    list_filter = ("supplier", "is_enabled", "supplier_status", "supplier_stock")
    list_select_related = ("sku", "supplier")
    search_fields = ("sku__code", "product_id", "supplier__name")
    raw_id_fields = ("sku",)
    ordering = ("sku__code", "priority", "id")
    readonly_fields = (
        "supplier_status",
        "supplier_stock",
        "checked_at",
        "created_at",
        "updated_at",
    )

    def get_readonly_fields(
        self, request: HttpRequest, obj: SupplierProduct | None = None
    ) -> tuple[str, ...]:
        # One mapping per (supplier, SKU): to move it, add a new one and disable this.
        if obj is not None:
            return ("supplier", "sku", *self.readonly_fields)
        return self.readonly_fields

    def has_delete_permission(
        self, request: HttpRequest, obj: SupplierProduct | None = None
    ) -> bool:
        return False

    def save_model(
        self,
        request: HttpRequest,
        obj: SupplierProduct,
        form: forms.Form,
        change: bool,
    ) -> None:
        # The form has checked everything supplier_map checks (bundle SKU, cost,
        # uniqueness); a DomainError here means a concurrent edit and rolls back.
        saved = supplier_map(
            sku_code=obj.sku.code,
            supplier_name=obj.supplier.name,
            product_id=obj.product_id,
            cost=obj.cost,
            priority=obj.priority,
            enabled=obj.is_enabled,
        )
        obj.pk = saved.pk
        obj.refresh_from_db()
