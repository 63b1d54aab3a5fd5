"""Operator admin for resellers: tiers and prices, rules, decisions, ledger, payouts.

Decisions go through services: approving, rejecting or suspending a reseller,
approving a payout (with the transfer reference) or rejecting it (with the
reason). Reject, suspend and payout approval ask for their text on an
intermediate page. The ledger is read-only; its reconcile report runs the
same checks as `manage.py reconcile_commissions`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from config.admin import ReadOnlyAdminMixin
from config.lib.errors import DomainError
from distribution.models import (
    CommissionEntry,
    CommissionRule,
    CustomerBinding,
    MinimumResalePrice,
    OrderAttribution,
    Payout,
    Reseller,
    Tier,
    TierPrice,
)
from distribution.reconcile import commissions_reconcile
from distribution.services import (
    payout_approve,
    payout_reject,
    reseller_approve,
    reseller_reject,
    reseller_suspend,
)

MSG_DONE = _("%(action)s：已处理 %(count)d 项。")
MSG_REFUSED = _("%(action)s %(obj)s 未执行：%(error)s")
MSG_TEXT_REQUIRED = _("请填写%(field)s。")
DECISION_TEMPLATE = "admin/distribution/decision_form.html"


def _actor(request: HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied
    return user


def _run(
    request: HttpRequest,
    label: str,
    rows: list[tuple[Model, Callable[[], object]]],
) -> None:
    """Call one service per row; each refusal becomes an error message."""
    done = 0
    for obj, call in rows:
        try:
            call()
            done += 1
        except DomainError as exc:
            messages.error(
                request,
                MSG_REFUSED % {"action": label, "obj": obj, "error": exc.message},
            )
    if done:
        messages.success(request, MSG_DONE % {"action": label, "count": done})


def _decision_page(
    request: HttpRequest,
    admin_obj: admin.ModelAdmin,
    queryset: QuerySet[Any],
    *,
    action: str,
    title: str,
    field_label: str,
    per_row: bool,
    errors: dict[str, str] | None = None,
) -> TemplateResponse:
    """The intermediate page asking for a reason (one for all) or a text per row."""
    return TemplateResponse(
        request,
        DECISION_TEMPLATE,
        {
            **admin_obj.admin_site.each_context(request),
            "opts": admin_obj.model._meta,
            "title": title,
            "action": action,
            "rows": [
                (obj, (errors or {}).get(f"value_{obj.pk}", "")) for obj in queryset
            ],
            "field_label": field_label,
            "per_row": per_row,
            "errors": errors or {},
            "values": request.POST,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        },
    )


# --- Tiers, prices, rules -------------------------------------------------------


class TierPriceInline(admin.TabularInline):
    model = TierPrice
    extra = 0
    raw_id_fields = ("sku",)


@admin.register(Tier)
class TierAdmin(admin.ModelAdmin):
    list_display = ("name", "discount_rate", "is_default", "sort_order")
    list_editable = ("sort_order",)
    inlines = (TierPriceInline,)


@admin.register(MinimumResalePrice)
class MinimumResalePriceAdmin(admin.ModelAdmin):
    list_display = ("sku", "price", "updated_at")
    list_select_related = ("sku",)
    raw_id_fields = ("sku",)
    search_fields = ("sku__code", "sku__name")


@admin.register(CommissionRule)
class CommissionRuleAdmin(admin.ModelAdmin):
    list_display = ("level", "rate", "tier", "sku", "updated_at")
    list_filter = ("level", "tier")
    list_select_related = ("tier", "sku")
    raw_id_fields = ("sku",)
    search_fields = ("sku__code",)


# --- Resellers ------------------------------------------------------------------


@admin.register(Reseller)
class ResellerAdmin(admin.ModelAdmin):
    list_display = (
        "referral_code",
        "user",
        "status",
        "tier",
        "parent",
        "depth",
        "created_at",
        "approved_at",
    )
    list_filter = ("status", "tier", "depth")
    list_select_related = ("user", "tier", "parent")
    search_fields = ("=referral_code", "user__email", "user__username")
    raw_id_fields = ("user", "parent")
    actions = ("approve", "reject", "suspend")
    # The tree and the status change only through services (locks, cycle checks).
    readonly_fields = (
        "user",
        "status",
        "application_note",
        "status_reason",
        "status_changed_by",
        "status_changed_at",
        "approved_at",
        "referral_code",
        "parent",
        "depth",
        "created_at",
    )
    fields = (
        *readonly_fields,
        "tier",
        "substore_slug",
        "substore_name",
        "substore_announcement",
        "substore_contact",
        "markup_rate",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # resellers apply from the storefront

    def has_decide_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("distribution.change_reseller")

    @admin.action(description=_("通过申请（或恢复）"), permissions=["decide"])
    def approve(self, request: HttpRequest, queryset: QuerySet[Reseller]) -> None:
        actor = _actor(request)
        _run(
            request,
            str(_("通过")),
            [
                (r, partial(reseller_approve, reseller_id=r.pk, actor=actor))
                for r in queryset.order_by("pk")
            ],
        )

    def _with_reason(
        self,
        request: HttpRequest,
        queryset: QuerySet[Reseller],
        *,
        action: str,
        label: str,
        service: Callable[..., object],
    ) -> TemplateResponse | None:
        reason = request.POST.get("reason", "").strip()
        if "apply" not in request.POST or not reason:
            errors = (
                {"reason": str(MSG_TEXT_REQUIRED % {"field": _("原因")})}
                if "apply" in request.POST
                else {}
            )
            return _decision_page(
                request,
                self,
                queryset,
                action=action,
                title=label,
                field_label=str(_("原因")),
                per_row=False,
                errors=errors,
            )
        actor = _actor(request)
        _run(
            request,
            label,
            [
                (
                    r,
                    partial(service, reseller_id=r.pk, actor=actor, reason=reason),
                )
                for r in queryset.order_by("pk")
            ],
        )
        return None

    @admin.action(description=_("拒绝申请（填写原因）"), permissions=["decide"])
    def reject(
        self, request: HttpRequest, queryset: QuerySet[Reseller]
    ) -> TemplateResponse | None:
        return self._with_reason(
            request,
            queryset,
            action="reject",
            label=str(_("拒绝代理申请")),
            service=reseller_reject,
        )

    @admin.action(description=_("停用代理（填写原因）"), permissions=["decide"])
    def suspend(
        self, request: HttpRequest, queryset: QuerySet[Reseller]
    ) -> TemplateResponse | None:
        return self._with_reason(
            request,
            queryset,
            action="suspend",
            label=str(_("停用代理")),
            service=reseller_suspend,
        )


@admin.register(CustomerBinding)
class CustomerBindingAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("user", "reseller", "created_at")
    list_select_related = ("user", "reseller")
    search_fields = ("user__email", "=reseller__referral_code")


@admin.register(OrderAttribution)
class OrderAttributionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("order", "reseller", "channel", "created_at")
    list_filter = ("channel",)
    list_select_related = ("order", "reseller")
    search_fields = ("=order__number", "=reseller__referral_code")


# --- The ledger and payouts -----------------------------------------------------------


@admin.register(CommissionEntry)
class CommissionEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "reseller",
        "order_line",
        "level",
        "kind",
        "amount",
        "rate",
        "base_amount",
        "state",
        "available_at",
        "payout",
    )
    list_filter = ("state", "kind", "level")
    list_select_related = ("reseller", "order_line", "payout")
    search_fields = ("=reseller__referral_code", "=order_line__order__number")
    date_hierarchy = "created_at"
    change_list_template = "admin/distribution/commissionentry/change_list.html"

    def get_urls(self) -> list[URLPattern]:
        report = path(
            "reconcile/",
            self.admin_site.admin_view(self.reconcile_view),
            name="distribution_commissionentry_reconcile",
        )
        return [report, *super().get_urls()]

    def reconcile_view(self, request: HttpRequest) -> HttpResponse:
        """Every discrepancy in the ledger (the reconcile_commissions checks)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return TemplateResponse(
            request,
            "admin/distribution/commissionentry/reconcile.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": _("佣金对账"),
                "discrepancies": commissions_reconcile(),
            },
        )


@admin.register(Payout)
class PayoutAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "requested_at",
        "reseller",
        "amount",
        "status",
        "transfer_reference",
        "reason",
        "decided_by",
        "decided_at",
    )
    list_filter = ("status",)
    list_select_related = ("reseller", "decided_by")
    search_fields = ("=reseller__referral_code", "transfer_reference")
    actions = ("approve", "reject")

    def has_decide_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("distribution.change_payout")

    @admin.action(description=_("已打款（填写转账凭证号）"), permissions=["decide"])
    def approve(
        self, request: HttpRequest, queryset: QuerySet[Payout]
    ) -> TemplateResponse | None:
        payouts = list(queryset.order_by("pk"))
        refs = {p.pk: request.POST.get(f"value_{p.pk}", "").strip() for p in payouts}
        missing = {
            f"value_{pk}": str(MSG_TEXT_REQUIRED % {"field": _("转账凭证号")})
            for pk, ref in refs.items()
            if not ref
        }
        if "apply" not in request.POST or missing:
            return _decision_page(
                request,
                self,
                queryset.order_by("pk"),
                action="approve",
                title=str(_("确认提现已打款")),
                field_label=str(_("转账凭证号")),
                per_row=True,
                errors=missing if "apply" in request.POST else {},
            )
        actor = _actor(request)
        _run(
            request,
            str(_("确认打款")),
            [
                (
                    p,
                    partial(
                        payout_approve,
                        payout_id=p.pk,
                        actor=actor,
                        transfer_reference=refs[p.pk],
                    ),
                )
                for p in payouts
            ],
        )
        return None

    @admin.action(description=_("拒绝提现（填写原因）"), permissions=["decide"])
    def reject(
        self, request: HttpRequest, queryset: QuerySet[Payout]
    ) -> TemplateResponse | None:
        reason = request.POST.get("reason", "").strip()
        if "apply" not in request.POST or not reason:
            return _decision_page(
                request,
                self,
                queryset.order_by("pk"),
                action="reject",
                title=str(_("拒绝提现")),
                field_label=str(_("原因")),
                per_row=False,
                errors={"reason": str(MSG_TEXT_REQUIRED % {"field": _("原因")})}
                if "apply" in request.POST
                else {},
            )
        actor = _actor(request)
        _run(
            request,
            str(_("拒绝提现")),
            [
                (
                    p,
                    partial(payout_reject, payout_id=p.pk, actor=actor, reason=reason),
                )
                for p in queryset.order_by("pk")
            ],
        )
        return None


# API partners: keys, balance ledger, webhooks (distribution/partner_admin.py).
from distribution import partner_admin  # noqa: E402, F401
