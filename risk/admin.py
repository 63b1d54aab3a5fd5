"""Admin for risk rules, block/allow lists and the (read-only) record of evaluations."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from risk.forms import RiskListEntryForm, RiskRuleForm
from risk.models import RiskEvaluation, RiskListEntry, RiskRule


@admin.register(RiskRule)
class RiskRuleAdmin(admin.ModelAdmin):
    form = RiskRuleForm
    list_display = (
        "name",
        "kind",
        "stage",
        "scope_label",
        "subject",
        "window_seconds",
        "threshold",
        "action",
        "priority",
        "active",
    )
    list_editable = ("priority", "active")
    list_filter = ("active", "kind", "stage", "action", "scope", "subject")
    list_select_related = ("platform", "sku")
    search_fields = ("name", "note")
    raw_id_fields = ("platform", "sku")
    ordering = ("priority", "id")
    fieldsets = (
        (None, {"fields": ("name", "kind", "stage", "action", "priority", "active")}),
        (_("范围"), {"fields": ("scope", "platform", "sku")}),
        (_("参数"), {"fields": ("subject", "window_seconds", "threshold", "note")}),
    )

    @admin.display(description=_("范围"))
    def scope_label(self, obj: RiskRule) -> str:
        if obj.scope == RiskRule.Scope.PLATFORM and obj.platform:
            return f"{obj.get_scope_display()}：{obj.platform}"
        if obj.scope == RiskRule.Scope.SKU and obj.sku:
            return f"{obj.get_scope_display()}：{obj.sku.code}"
        return str(obj.get_scope_display())


@admin.register(RiskListEntry)
class RiskListEntryAdmin(admin.ModelAdmin):
    form = RiskListEntryForm
    list_display = (
        "list_kind",
        "subject",
        "value",
        "active",
        "note",
        "created_by",
        "created_at",
    )
    list_filter = ("list_kind", "subject", "active")
    list_select_related = ("created_by",)
    search_fields = ("value", "note")
    readonly_fields = ("created_by", "created_at")

    def save_model(
        self, request: HttpRequest, obj: RiskListEntry, form: Any, change: bool
    ) -> None:
        if not change:
            obj.created_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)


@admin.register(RiskEvaluation)
class RiskEvaluationAdmin(admin.ModelAdmin):
    """What the engine decided and why: a record, never edited."""

    list_display = (
        "created_at",
        "stage",
        "decision",
        "fired_names",
        "order",
        "user",
        "ip_address",
        "device",
    )
    list_filter = ("stage", "decision", "created_at")
    list_select_related = ("order", "user")
    date_hierarchy = "created_at"
    search_fields = ("order__number", "ip_address", "device")
    fields = (
        "created_at",
        "stage",
        "decision",
        "fired_table",
        "inputs_table",
        "order",
        "user",
        "ip_address",
        "device",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("触发规则"))
    def fired_names(self, obj: RiskEvaluation) -> str:
        return (
            "；".join(f"{f.get('name')}（{f.get('action')}）" for f in obj.fired) or "—"
        )

    @admin.display(description=_("触发规则"))
    def fired_table(self, obj: RiskEvaluation) -> str:
        if not obj.fired:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    f.get("name", ""),
                    f.get("kind", ""),
                    f.get("action", ""),
                    f.get("detail", ""),
                )
                for f in obj.fired
            ),
        )
        return format_html(
            "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            _("规则"),
            _("类型"),
            _("处置"),
            _("原因"),
            rows,
        )

    @admin.display(description=_("输入"))
    def inputs_table(self, obj: RiskEvaluation) -> str:
        items = [(k, v) for k, v in obj.inputs.items() if k != "counts"]
        items += [
            (
                f"{c['metric']} / {c['subject']} / {c['scope']} / {c['window']}",
                c["value"],
            )
            for c in obj.inputs.get("counts", [])
        ]
        if not items:
            return "—"
        return format_html(
            "<table><tbody>{}</tbody></table>",
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", items),
        )
