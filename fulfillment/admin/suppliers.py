"""Supplier admin: credentials in, balance and product health out.

The signing secret is write-only: a password field that never renders a value
(blank on every page load, blank on a failed submit), where leaving it blank
keeps the sealed secret. Saves go through the services (supplier_register,
supplier_map) so the admin, the commands and any script seal and validate the
same way. The refresh action calls the suppliers over the network; Django runs
admin actions outside a transaction, so no row is held meanwhile.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from catalog.models import Sku
from fulfillment.models import Supplier, SupplierProduct
from fulfillment.services import supplier_map, supplier_refresh, supplier_register
from fulfillment.services.suppliers import ERR_BUNDLE_SKU, ERR_SECRET_REQUIRED

MSG_REFRESHED = _("已刷新 %(name)s：余额 %(balance)s")
MSG_REFRESH_FAILED = _("%(name)s 刷新出错：%(error)s")


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
    list_display = (
        "name",
        "adapter",
        "priority",
        "is_enabled",
        "last_balance",
        "balance_checked_at",
        "last_error",
    )
    list_filter = ("is_enabled", "adapter")
    search_fields = ("name", "app_key")
    ordering = ("priority", "id")
    actions = ("refresh_now",)
    readonly_fields = (
        "last_balance",
        "balance_checked_at",
        "last_error",
        "created_at",
        "updated_at",
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
