"""Operator admin for API partners: accounts, keys, the balance ledger, orders, webhooks.

Keys are issued and revoked here: a new key's secret (and a new webhook secret)
is shown once, on the page the action answers with, never stored in a message
cookie or a log. The ledger is append-only: an operator adds top-ups and
adjustments through `balance_top_up` / adjustments, never edits a row. Webhook
deliveries and every attempt (status, response code, duration, error) are
read-only; "send again now" requeues a failed or waiting delivery.
"""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import DecimalField, QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from config.admin import ReadOnlyAdminMixin
from config.lib.errors import DomainError
from config.lib.money import ZERO
from distribution.models import (
    ApiKey,
    PartnerAccount,
    PartnerBalanceEntry,
    PartnerOrder,
    WebhookAttempt,
    WebhookDelivery,
)
from distribution.partners.balance import balance_adjust_to, balance_of, balance_top_up
from distribution.partners.keys import api_key_create, api_key_revoke
from distribution.webhooks import RETRY_FOR, webhook_secret_set, webhook_sweep

SECRET_TEMPLATE = "admin/distribution/partner_secret.html"  # noqa: S105 (a path)


def _actor(request: HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied
    return user


def _secret_page(
    request: HttpRequest, *, title: str, rows: list[tuple[str, str, str]]
) -> TemplateResponse:
    """The one page a secret is ever shown on; not cached by the browser."""
    response = TemplateResponse(
        request,
        SECRET_TEMPLATE,
        {**admin.site.each_context(request), "title": title, "rows": rows},
    )
    response["Cache-Control"] = "no-store"
    return response


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    can_delete = False
    fields = ("key_id", "label", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PartnerAccount)
class PartnerAccountAdmin(admin.ModelAdmin):
    list_display = ("reseller", "is_enabled", "webhook_url", "balance", "created_at")
    list_select_related = ("reseller__user",)
    raw_id_fields = ("reseller",)
    search_fields = ("reseller__user__email", "reseller__referral_code")
    fields = ("reseller", "is_enabled", "webhook_url", "has_webhook_secret")
    readonly_fields = ("has_webhook_secret",)
    inlines = (ApiKeyInline,)
    actions = ("issue_key", "new_webhook_secret")

    def get_queryset(self, request: HttpRequest) -> QuerySet[PartnerAccount]:
        queryset: QuerySet[PartnerAccount] = (
            super()
            .get_queryset(request)
            .annotate(
                balance_sum=Coalesce(
                    Sum("balance_entries__amount"),
                    Value(ZERO),
                    output_field=DecimalField(max_digits=14, decimal_places=2),
                )
            )
        )
        return queryset

    @admin.display(description=_("预存款余额"))
    def balance(self, obj: PartnerAccount) -> Decimal:
        return getattr(obj, "balance_sum", None) or balance_of(account_id=obj.pk)

    @admin.display(description=_("已设置回调密钥"), boolean=True)
    def has_webhook_secret(self, obj: PartnerAccount) -> bool:
        return bool(obj.webhook_secret_ciphertext)

    @admin.action(description=_("签发新的 API 密钥（密钥只显示一次）"))
    def issue_key(
        self, request: HttpRequest, queryset: QuerySet[PartnerAccount]
    ) -> HttpResponse:
        rows = []
        for account in queryset.select_related("reseller__user"):
            key, secret = api_key_create(
                account=account,
                actor=_actor(request),
                label="admin",
            )
            rows.append((str(account.reseller.user), key.key_id, secret))
        return _secret_page(request, title=str(_("新的 API 密钥")), rows=rows)

    @admin.action(description=_("生成新的回调签名密钥（只显示一次）"))
    def new_webhook_secret(
        self, request: HttpRequest, queryset: QuerySet[PartnerAccount]
    ) -> HttpResponse:
        rows = []
        for account in queryset.select_related("reseller__user"):
            secret = secrets.token_urlsafe(32)
            webhook_secret_set(account=account, secret=secret)
            rows.append((str(account.reseller.user), "webhook", secret))
        return _secret_page(request, title=str(_("新的回调签名密钥")), rows=rows)


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "key_id",
        "account",
        "label",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    list_select_related = ("account__reseller__user",)
    list_filter = ("revoked_at",)
    search_fields = ("key_id", "account__reseller__user__email")
    fields = (
        "key_id",
        "account",
        "label",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    actions = ("revoke",)

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("distribution.change_apikey")

    @admin.action(description=_("吊销所选密钥"), permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = sum(api_key_revoke(api_key_id=key.pk) for key in queryset)
        self.message_user(request, _("已吊销 %(n)d 个密钥。") % {"n": count})


class BalanceEntryForm(forms.ModelForm):
    kind = forms.ChoiceField(
        label=_("类型"),
        choices=[
            (PartnerBalanceEntry.Kind.TOP_UP, PartnerBalanceEntry.Kind.TOP_UP.label),
            (PartnerBalanceEntry.Kind.ADJUSTMENT, _("调整到指定余额")),
        ],
    )
    amount = forms.DecimalField(
        label=_("金额"),
        max_digits=12,
        decimal_places=2,
        min_value=Decimal("0.00"),
        help_text=_("充值：加到余额上的金额；调整：调整后的余额。"),
    )

    class Meta:
        model = PartnerBalanceEntry
        fields = ("account", "kind", "amount", "note")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("kind") == PartnerBalanceEntry.Kind.TOP_UP and not cleaned.get(
            "amount"
        ):
            self.add_error("amount", _("充值金额必须大于 0。"))
        return cleaned

    def _post_clean(self) -> None:
        # The entry is written by the services in save_model, not from this form.
        return None


@admin.register(PartnerBalanceEntry)
class PartnerBalanceEntryAdmin(admin.ModelAdmin):
    form = BalanceEntryForm
    list_display = (
        "created_at",
        "account",
        "kind",
        "amount",
        "order",
        "refund_no",
        "note",
        "actor",
    )
    list_select_related = ("account__reseller__user", "order", "actor")
    list_filter = ("kind",)
    raw_id_fields = ("account",)
    search_fields = ("account__reseller__user__email", "order__number", "refund_no")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: PartnerBalanceEntry, form: Any, change: bool
    ) -> None:
        data = form.cleaned_data
        entry: PartnerBalanceEntry | None
        try:
            if data["kind"] == PartnerBalanceEntry.Kind.TOP_UP:
                entry = balance_top_up(
                    account=data["account"],
                    amount=data["amount"],
                    actor=_actor(request),
                    note=data.get("note", ""),
                )
            else:
                entry = balance_adjust_to(
                    account=data["account"],
                    target=data["amount"],
                    actor=_actor(request),
                    note=data.get("note", ""),
                )
        except DomainError as exc:
            messages.error(request, str(exc))
            return
        if entry is not None:
            obj.pk = entry.pk


@admin.register(PartnerOrder)
class PartnerOrderAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("out_trade_no", "account", "order", "created_at")
    list_select_related = ("account__reseller__user", "order")
    search_fields = ("out_trade_no", "order__number")
    exclude = ("request_hash",)


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = (
        "number",
        "created_at",
        "succeeded",
        "response_code",
        "duration_ms",
        "error",
        "url",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "account",
        "order",
        "event",
        "status",
        "attempts",
        "next_attempt_at",
        "delivered_at",
    )
    list_select_related = ("account__reseller__user", "order")
    list_filter = ("status", "event")
    search_fields = ("order__number",)
    # The body holds card codes (sealed): never shown here.
    exclude = ("body_ciphertext", "body_key_id", "claimed_at")
    inlines = (WebhookAttemptInline,)
    actions = ("send_again",)

    def has_send_again_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("distribution.change_webhookdelivery")

    @admin.action(description=_("立即重新发送"), permissions=["send_again"])
    def send_again(
        self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]
    ) -> None:
        now = timezone.now()
        count = queryset.filter(
            status__in=(WebhookDelivery.Status.PENDING, WebhookDelivery.Status.FAILED)
        ).update(
            status=WebhookDelivery.Status.PENDING,
            next_attempt_at=now,
            give_up_at=now + RETRY_FOR,
        )
        webhook_sweep(now=now)
        self.message_user(request, _("已重新排队 %(n)d 个投递。") % {"n": count})
