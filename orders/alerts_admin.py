"""Operator alerts in the admin: what was alerted, and whether its digest went out.

Read-only whoever asks: alerts are written by the periodic check and their
emails by its Celery task (orders/services/operator_alerts.py). A digest that
could not be sent stays here `pending` (being retried) or `failed`, with the
mail server's last error, so a silent mail outage shows up.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from config.admin import ReadOnlyAdminMixin
from orders.models import OperatorAlert, OperatorAlertEmail
from orders.services.operator_alerts import operator_alert_render

LIST_TEXT_CHARS = 40


@admin.register(OperatorAlertEmail)
class OperatorAlertEmailAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "created_at",
        "kind",
        "day",
        "total",
        "recipients",
        "status",
        "attempts",
        "error",
        "sent_at",
    )
    list_filter = ("status", "kind", "day")
    date_hierarchy = "day"
    fields = (
        "kind",
        "day",
        "recipients",
        "language",
        "total",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "claimed_at",
        "sent_at",
        "preview",
    )
    readonly_fields = fields

    @admin.display(description=_("收件人"))
    def recipients(self, obj: OperatorAlertEmail) -> str:
        return ", ".join(str(address) for address in obj.to)

    @admin.display(description=_("最近错误"))
    def error(self, obj: OperatorAlertEmail) -> str:
        return Truncator(obj.last_error).chars(LIST_TEXT_CHARS) or "—"

    @admin.display(description=_("邮件正文"))
    def preview(self, obj: OperatorAlertEmail) -> str:
        # Exactly what was (or will be) sent, as text: the snapshot holds no code.
        _subject, text, _html = operator_alert_render(obj)
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', text)


@admin.register(OperatorAlert)
class OperatorAlertAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("day", "kind", "sku", "email_status", "created_at")
    list_filter = ("kind", "day")
    list_select_related = ("sku", "email")
    search_fields = ("=sku__code",)
    fields = ("kind", "sku", "day", "email", "created_at")
    readonly_fields = fields

    @admin.display(description=_("邮件状态"))
    def email_status(self, obj: OperatorAlert) -> str:
        return obj.email.get_status_display() if obj.email else "—"
