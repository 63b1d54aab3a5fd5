"""Operator admin for the code vault: batches (with the import flow), codes, access log.

Plaintext codes leave the vault here in exactly two places, both behind their own
permission and both audited through card_code_reveal(): the per-code reveal page
(reveal_cardcode) and the CSV export action (export_cardcode). Neither ever puts a
code in a URL, a message, the session or a log line, and both answer no-store.

The import keeps the uploaded file between preview and confirm only sealed by the
vault (vault.seal_blob) in the cache, and reads uploads into memory, never into a
temporary file on disk.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import secrets
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.files.uploadhandler import MemoryFileUploadHandler
from django.db.models import QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from import_export import fields, resources
from import_export.admin import ExportMixin
from import_export.formats import base_formats

from catalog.models import Sku
from config.lib.errors import DomainError
from fulfillment import codefile, vault
from fulfillment.forms import (
    CodeImportConfirmForm,
    CodeImportForm,
    expires_at_from_date,
)
from fulfillment.models import CardCode, CodeAccessLog, CodeBatch
from fulfillment.selectors import code_batch_list_with_counts
from fulfillment.services import card_code_reveal, card_codes_export, card_codes_import

if TYPE_CHECKING:
    from django.contrib.auth.models import User

IMPORT_CACHE_KEY = "fulfillment:code-import:{token}"
IMPORT_TTL_SECONDS = 30 * 60
# Multipart framing and the small form fields around the file itself.
UPLOAD_OVERHEAD_BYTES = 64 * 1024
PREVIEW_REJECTED_LINES = 200
EXPORT_MAX_CODES = 5000
# Never selectable, searchable or filterable in the admin, for anyone.
SECRET_FIELDS = frozenset({"ciphertext", "fingerprint", "key_id"})

MSG_IMPORT_EXPIRED = _("预览已过期或已确认过，请重新上传文件。")
MSG_IMPORT_NOTHING_NEW = _("文件里没有可导入的新卡密。")
MSG_IMPORT_DONE = _(
    "批次 #%(batch)s 导入完成：导入 %(imported)d，重复 %(duplicates)d，拒绝 %(rejected)d。"
)
MSG_IMPORT_TOO_LARGE = _("文件超过 32 MiB，请拆分后导入。")
MSG_EXPORT_TOO_MANY = _("一次最多导出 %(max)d 个卡密，请缩小筛选范围。")


def _client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def _staff_user(request: HttpRequest) -> User:
    """The acting staff member (admin_view has already turned anonymous users away)."""
    user = request.user
    if isinstance(user, AnonymousUser):
        raise PermissionDenied
    return user


class InMemoryUploadHandler(MemoryFileUploadHandler):
    """Keep the whole upload in memory up to the import limit.

    Django's default chain spools anything above FILE_UPLOAD_MAX_MEMORY_SIZE
    (2.5 MB) to a temporary file: for a code file that would be plaintext on disk.
    Above the limit this handler stays inactive and the file is simply dropped.
    """

    def handle_raw_input(
        self,
        input_data: Any,
        META: dict[str, Any],
        content_length: int,
        boundary: Any,
        encoding: str | None = None,
    ) -> None:
        self.activated = (
            content_length <= codefile.MAX_FILE_BYTES + UPLOAD_OVERHEAD_BYTES
        )


# --- Batches ------------------------------------------------------------------


class CodeBatchResource(resources.ModelResource):
    """The batch report: costs and counts, never a code."""

    sku_code = fields.Field(attribute="sku__code", column_name=_("SKU"))
    available_count = fields.Field(attribute="available_count", column_name=_("可售"))
    reserved_count = fields.Field(attribute="reserved_count", column_name=_("已预留"))
    sold_count = fields.Field(attribute="sold_count", column_name=_("已售"))

    class Meta:
        model = CodeBatch
        fields = (
            "id",
            "sku_code",
            "source",
            "cost_price",
            "currency",
            "expires_at",
            "note",
            "created_at",
            "imported_count",
            "duplicate_count",
            "rejected_count",
            "available_count",
            "reserved_count",
            "sold_count",
        )
        export_order = fields


@admin.register(CodeBatch)
class CodeBatchAdmin(ExportMixin, admin.ModelAdmin):
    resource_classes = (CodeBatchResource,)
    export_formats = (base_formats.CSV, base_formats.XLSX)
    # Our template renders both the import button and import-export's export link.
    change_list_template = "admin/fulfillment/codebatch/change_list.html"
    import_export_change_list_template = None

    list_display = (
        "id",
        "sku",
        "source",
        "cost_price",
        "expires_at",
        "note",
        "created_by",
        "created_at",
        "imported_count",
        "duplicate_count",
        "rejected_count",
        "available",
        "reserved",
        "sold",
    )
    list_filter = ("created_at", "sku__product__platform")
    list_select_related = ("sku", "created_by")
    search_fields = ("=id", "sku__code", "source", "note", "file_name")
    # The selector's counts join every code: no date_hierarchy (its MIN/MAX and
    # DISTINCT queries would aggregate the whole vault) and one COUNT, not two.
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    fields = (
        "sku",
        "source",
        "note",
        "cost_price",
        "currency",
        "expires_at",
        "file_name",
        "created_by",
        "created_at",
        "imported_count",
        "duplicate_count",
        "rejected_count",
    )
    # Only the free-text labels stay editable: money, counters and provenance are facts.
    readonly_fields = tuple(f for f in fields if f not in ("source", "note"))

    def get_queryset(self, request: HttpRequest) -> QuerySet[CodeBatch]:
        qs = code_batch_list_with_counts()
        ordering = self.get_ordering(request)
        return qs.order_by(*ordering) if ordering else qs

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Batches are born only from an import (the import view checks add_codebatch).
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: CodeBatch | None = None
    ) -> bool:
        return False

    def has_import_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("fulfillment.add_codebatch")

    def has_export_permission(self, request: HttpRequest) -> bool:
        # import-export allows every staff user by default; the report needs view rights.
        return self.has_view_permission(request)

    @admin.display(description=_("可售"), ordering="available_count")
    def available(self, obj: CodeBatch) -> int:
        return int(obj.available_count)  # type: ignore[attr-defined]

    @admin.display(description=_("已预留"), ordering="reserved_count")
    def reserved(self, obj: CodeBatch) -> int:
        return int(obj.reserved_count)  # type: ignore[attr-defined]

    @admin.display(description=_("已售"), ordering="sold_count")
    def sold(self, obj: CodeBatch) -> int:
        return int(obj.sold_count)  # type: ignore[attr-defined]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "has_import_permission": self.has_import_permission(request),
        }
        return super().changelist_view(request, extra_context)

    def get_urls(self) -> list[URLPattern]:
        # csrf_exempt only postpones the check: import_codes_view must swap the
        # upload handlers before anything reads request.POST, then runs csrf_protect.
        view = self.admin_site.admin_view(csrf_exempt(self.import_codes_view))
        return [
            path("import/", view, name="fulfillment_codebatch_import"),
            *super().get_urls(),
        ]

    # --- the import flow ---

    def import_codes_view(self, request: HttpRequest) -> HttpResponse:
        request.upload_handlers = [InMemoryUploadHandler(request)]
        return csrf_protect(self._import_codes)(request)

    def _import_codes(self, request: HttpRequest) -> HttpResponse:
        """GET: the upload form. POST file: a dry-run preview. POST token: the import."""
        if not self.has_import_permission(request):
            raise PermissionDenied
        if request.method == "POST" and "token" in request.POST:
            return self._import_confirm(request)
        if request.method != "POST":
            return self._render_import_form(request, CodeImportForm())

        form = CodeImportForm(request.POST, request.FILES)
        if int(request.META.get("CONTENT_LENGTH") or 0) > (
            codefile.MAX_FILE_BYTES + UPLOAD_OVERHEAD_BYTES
        ):
            form.add_error(None, MSG_IMPORT_TOO_LARGE)
        if not form.is_valid():
            return self._render_import_form(request, form)

        content = form.cleaned_data["file"].read()
        options = form.import_options()
        try:
            result = card_codes_import(
                **self._import_kwargs(options),
                content=content,
                actor=_staff_user(request),
                dry_run=True,
            )
        except DomainError as exc:
            form.add_error("file", exc.message)
            return self._render_import_form(request, form)

        token = ""
        if result.imported > 0:
            token = secrets.token_urlsafe(32)
            cache.set(
                IMPORT_CACHE_KEY.format(token=token),
                {
                    **options,
                    "user_id": request.user.pk,
                    "blob": vault.seal_blob(content),
                },
                IMPORT_TTL_SECONDS,
            )
        else:
            messages.warning(request, MSG_IMPORT_NOTHING_NEW)
        context = {
            **self._context(request, _("导入预览")),
            "result": result,
            "rejected_lines": result.rejected_lines[:PREVIEW_REJECTED_LINES],
            "more_rejected": max(
                0, len(result.rejected_lines) - PREVIEW_REJECTED_LINES
            ),
            "sku": form.cleaned_data["sku"],
            "options": options,
            "confirm_form": CodeImportConfirmForm(initial={"token": token})
            if token
            else None,
        }
        return TemplateResponse(
            request, "admin/fulfillment/codebatch/import_preview.html", context
        )

    def _import_confirm(self, request: HttpRequest) -> HttpResponse:
        confirm = CodeImportConfirmForm(request.POST)
        entry = None
        if confirm.is_valid():
            key = IMPORT_CACHE_KEY.format(token=confirm.cleaned_data["token"])
            entry = cache.get(key)
            # Only the uploader may confirm, and only once: whoever deletes the key
            # wins a double-click race, the other sees "expired".
            if (
                entry is None
                or entry["user_id"] != request.user.pk
                or not cache.delete(key)
            ):
                entry = None
        if entry is None:
            messages.error(request, MSG_IMPORT_EXPIRED)
            return HttpResponseRedirect(reverse("admin:fulfillment_codebatch_import"))

        try:
            result = card_codes_import(
                **self._import_kwargs(entry),
                content=vault.open_blob(entry["blob"]),
                actor=_staff_user(request),
            )
        except DomainError as exc:
            # Something changed since the preview (the SKU, the clock): nothing imported.
            messages.error(request, exc.message)
            form = CodeImportForm(initial={"sku": entry["sku_id"]})
            return self._render_import_form(request, form)
        if result.batch is None:  # only a dry run comes back without a batch
            raise RuntimeError("card_codes_import returned no batch")
        self.log_addition(request, result.batch, [{"added": {}}])
        messages.success(
            request,
            MSG_IMPORT_DONE
            % {
                "batch": result.batch.pk,
                "imported": result.imported,
                "duplicates": result.duplicates,
                "rejected": result.rejected,
            },
        )
        return HttpResponseRedirect(
            reverse("admin:fulfillment_codebatch_change", args=[result.batch.pk])
        )

    @staticmethod
    def _import_kwargs(options: dict[str, Any]) -> dict[str, Any]:
        sku = Sku.objects.filter(pk=options["sku_id"]).first()
        if sku is None:
            raise Http404
        day = options["expires"]
        return {
            "sku": sku,
            "file_name": options["file_name"],
            "source": options["source"],
            "cost_price": Decimal(options["cost_price"])
            if options["cost_price"]
            else None,
            "expires_at": expires_at_from_date(
                dt.date.fromisoformat(day) if day else None
            ),
            "note": options["note"],
        }

    def _render_import_form(
        self, request: HttpRequest, form: CodeImportForm
    ) -> HttpResponse:
        context = {**self._context(request, _("导入卡密")), "form": form}
        return TemplateResponse(
            request, "admin/fulfillment/codebatch/import.html", context
        )

    def _context(self, request: HttpRequest, title: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "has_view_permission": self.has_view_permission(request),
        }


# --- Codes --------------------------------------------------------------------


@admin.register(CardCode)
class CardCodeAdmin(admin.ModelAdmin):
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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: CardCode | None = None
    ) -> bool:
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: CardCode | None = None
    ) -> bool:
        return False

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
class CodeAccessLogAdmin(admin.ModelAdmin):
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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: CodeAccessLog | None = None
    ) -> bool:
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: CodeAccessLog | None = None
    ) -> bool:
        return False

    @admin.display(description=_("卡密（掩码）"), ordering="code__hint")
    def code_hint(self, obj: CodeAccessLog) -> str:
        return obj.code.hint

    @admin.display(description=_("SKU"), ordering="code__sku__code")
    def code_sku(self, obj: CodeAccessLog) -> str:
        return obj.code.sku.code
