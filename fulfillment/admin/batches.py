"""Batch admin and the code import flow.

An upload is plaintext codes in bulk, so the import keeps it out of anything that
outlives the request unprotected: uploads are read into memory, never spooled to a
temporary file on disk (InMemoryUploadHandler), and between preview and confirm the
file sits in the cache only sealed by the vault (vault.seal_blob). The batch report
export carries costs and counts, never a code.
"""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.files.uploadhandler import MemoryFileUploadHandler
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from import_export import fields, resources

from catalog.models import Sku
from config.lib.errors import DomainError
from config.lib.exports import SafeExportMixin
from fulfillment import codefile, vault
from fulfillment.admin._common import _staff_user
from fulfillment.forms import (
    ERR_FILE_TOO_LARGE,
    CodeImportConfirmForm,
    CodeImportForm,
    expires_at_from_date,
)
from fulfillment.models import CodeBatch
from fulfillment.selectors import code_batch_list_with_counts
from fulfillment.services import card_codes_import

IMPORT_CACHE_KEY = "fulfillment:code-import:{token}"
IMPORT_TTL_SECONDS = 30 * 60
# Multipart framing and the small form fields around the file itself.
UPLOAD_OVERHEAD_BYTES = 64 * 1024
PREVIEW_REJECTED_LINES = 200

MSG_IMPORT_EXPIRED = _("预览已过期或已确认过，请重新上传文件。")
MSG_IMPORT_NOTHING_NEW = _("文件里没有可导入的新卡密。")
MSG_IMPORT_DONE = _(
    "批次 #%(batch)s 导入完成：导入 %(imported)d，重复 %(duplicates)d，拒绝 %(rejected)d。"
)
MSG_IMPORT_TOO_LARGE = ERR_FILE_TOO_LARGE


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
            content_length <= codefile.ADMIN_MAX_FILE_BYTES + UPLOAD_OVERHEAD_BYTES
        )


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
class CodeBatchAdmin(SafeExportMixin, admin.ModelAdmin):
    # CSV and XLSX, formula-like cells escaped, a bad filter a 400 (config/lib/exports.py).
    resource_classes = (CodeBatchResource,)
    # Our template renders both the import button and import-export's export link.
    change_list_template = "admin/fulfillment/codebatch/change_list.html"
    import_export_change_list_template = None

    # Counts next to the SKU, provenance after: the list is read for stock first.
    list_display = (
        "id",
        "sku",
        "available",
        "reserved",
        "sold",
        "imported_count",
        "duplicate_count",
        "rejected_count",
        "cost_price",
        "expires_at",
        "source",
        "note",
        "created_by",
        "created_at",
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
            codefile.ADMIN_MAX_FILE_BYTES + UPLOAD_OVERHEAD_BYTES
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
            "max_codes": codefile.ADMIN_MAX_CODES,
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
