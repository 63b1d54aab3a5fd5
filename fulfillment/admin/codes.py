"""Card code admin (masked list, audited reveal and CSV export) and the access log.

Plaintext codes leave the vault through the admin in exactly two places, both behind
their own permission and both audited by the vault services before any plaintext is
returned: the per-code reveal page (reveal_cardcode, card_code_reveal) and the CSV
export action (export_cardcode, card_codes_export). Neither ever puts a code in a URL,
a message, the session or a log line, and both answer no-store.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from config.admin import ReadOnlyAdminMixin
from config.lib.clientip import client_ip
from fulfillment.admin._common import _staff_user
from fulfillment.models import CardCode, CodeAccessLog
from fulfillment.services import card_code_reveal, card_codes_export

EXPORT_MAX_CODES = 5000
# Never selectable, searchable or filterable in the admin, for anyone.
SECRET_FIELDS = frozenset({"ciphertext", "fingerprint", "key_id"})

MSG_EXPORT_TOO_MANY = _("一次最多导出 %(max)d 个卡密，请缩小筛选范围。")


def _client_ip(request: HttpRequest) -> str | None:
    return client_ip(request)


@admin.register(CardCode)
class CardCodeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "sku",
        "batch",
        "hint",
        "status",
        "expires_at",
        "order_number",
        "sold_at",
    )
    list_filter = ("status", "sku")
    list_select_related = ("sku", "batch", "order_line__order")
    search_fields = ("=order_line__order__number", "hint")
    search_help_text = _("按订单号（完整）或掩码搜索")
    # The vault holds millions of rows: skip the unfiltered COUNT(*) on every page,
    # and never offer per-filter facet counts.
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100
    # An explicit field list: ciphertext, fingerprint and key_id never reach a form.
    fields = (
        "sku",
        "batch",
        "hint",
        "status",
        "expires_at",
        "order_number",
        "reserved_at",
        "sold_at",
        "created_at",
    )
    readonly_fields = fields
    actions = ("export_codes_csv",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[CardCode]:
        # Pages never need the sealed columns; the reveal and export load them on purpose.
        return super().get_queryset(request).defer("ciphertext", "fingerprint")

    def has_reveal_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("fulfillment.reveal_cardcode")

    def has_export_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("fulfillment.export_cardcode")

    def lookup_allowed(
        self, lookup: str, value: str, request: HttpRequest | None = None
    ) -> bool:
        # No ?ciphertext__startswith=… or ?fingerprint=… probing through the changelist.
        if lookup.split(LOOKUP_SEP, 1)[0] in SECRET_FIELDS:
            return False
        return super().lookup_allowed(lookup, value, request)

    @admin.display(description=_("订单号"), ordering="order_line__order__number")
    def order_number(self, obj: CardCode) -> str:
        if obj.order_line is None:
            return "—"
        order = obj.order_line.order
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:orders_order_change", args=[order.pk]),
            order,
        )

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "has_reveal_permission": self.has_reveal_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self) -> list[URLPattern]:
        reveal = path(
            "<path:object_id>/reveal/",
            self.admin_site.admin_view(self.reveal_view),
            name="fulfillment_cardcode_reveal",
        )
        # Before the defaults: their "<path:object_id>/" catch-all would swallow it.
        return [reveal, *super().get_urls()]

    def reveal_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST only: decrypt one code for a custodian, audited, in a no-store page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_reveal_permission(request):
            raise PermissionDenied
        code = self.get_object(request, unquote(object_id))
        if code is None:
            raise Http404
        plaintext = card_code_reveal(
            code=code,
            actor=_staff_user(request),
            action=CodeAccessLog.Action.REVEALED_BY_STAFF,
            ip_address=_client_ip(request),
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("卡密明文"),
            "code": code,
            "plaintext": plaintext,
        }
        response = TemplateResponse(
            request, "admin/fulfillment/cardcode/reveal.html", context
        )
        add_never_cache_headers(response)
        return response

    @admin.action(description=_("导出卡密 (CSV)"), permissions=["export"])
    def export_codes_csv(
        self, request: HttpRequest, queryset: QuerySet[CardCode]
    ) -> Any:
        if not self.has_export_permission(request):
            raise PermissionDenied
        codes = list(
            queryset.defer(None)
            .select_related("sku")
            .order_by("pk")[: EXPORT_MAX_CODES + 1]
        )
        if len(codes) > EXPORT_MAX_CODES:
            self.message_user(
                request, MSG_EXPORT_TOO_MANY % {"max": EXPORT_MAX_CODES}, messages.ERROR
            )
            return None
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([str(_("SKU")), str(_("掩码")), str(_("卡密")), str(_("状态"))])
        exported = card_codes_export(
            codes=codes, actor=_staff_user(request), ip_address=_client_ip(request)
        )
        for code, plaintext in exported:
            writer.writerow([code.sku.code, code.hint, plaintext, code.status])
        # The BOM makes Excel read the file as UTF-8.
        response = HttpResponse(
            "\ufeff" + buffer.getvalue(), content_type="text/csv; charset=utf-8"
        )
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = (
            f'attachment; filename="cardcodes-{stamp}.csv"'
        )
        add_never_cache_headers(response)
        return response


@admin.register(CodeAccessLog)
class CodeAccessLogAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "code_hint",
        "code_sku",
        "actor",
        "action",
        "ip_address",
    )
    list_filter = ("action", "created_at")
    list_select_related = ("code", "code__sku", "actor")
    search_fields = ("=code__id", "code__hint", "actor__email", "actor__username")
    date_hierarchy = "created_at"
    show_facets = admin.ShowFacets.NEVER
    fields = ("created_at", "code", "actor", "action", "ip_address")
    readonly_fields = fields

    @admin.display(description=_("卡密（掩码）"), ordering="code__hint")
    def code_hint(self, obj: CodeAccessLog) -> str:
        return obj.code.hint

    @admin.display(description=_("SKU"), ordering="code__sku__code")
    def code_sku(self, obj: CodeAccessLog) -> str:
        return obj.code.sku.code
