"""The supplier callback log: every callback received, accepted or not, read-only.

A stored body is bounded (supplier_callback_handle keeps the first 4 KiB) and
holds nothing secret but its signature, which the page masks: as JSON when the
body parses, by pattern when it does not (a truncated or form-encoded body).
"""

from __future__ import annotations

import json
import re

from django.contrib import admin
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from config.admin import ReadOnlyAdminMixin
from fulfillment.admin._common import MASK, SECRET_KEYS, pretty_json
from fulfillment.models import SupplierCallback

_KEYS = "|".join(sorted(SECRET_KEYS))
# "sign": "…" in JSON that did not parse (cut off at the stored size).
_JSON_SECRET = re.compile(rf'("(?:{_KEYS})"\s*:\s*)("(?:[^"\\]|\\.)*"?|[^,}}\s]*)')
# sign=… in a form-encoded body.
_FORM_SECRET = re.compile(rf"(^|[&?\s])((?:{_KEYS})=)[^&\s]*")


def masked_callback_body(body: str) -> str:
    """The body as a page may show it: pretty JSON, signature masked."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict | list):
        return pretty_json(data)
    masked = _JSON_SECRET.sub(rf'\1"{MASK}"', body)
    return _FORM_SECRET.sub(rf"\1\2{MASK}", masked)


@admin.register(SupplierCallback)
class SupplierCallbackAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "supplier_label",
        "customer_order_no",
        "state",
        "outcome",
        "body_size",
        "remote_addr",
    )
    list_filter = ("outcome", "supplier", "created_at")
    list_select_related = ("supplier",)
    search_fields = ("=customer_order_no", "=supplier_name")
    search_help_text = _("按请求单号或供应商标识（完整）搜索")
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 100
    fields = (
        "created_at",
        "supplier_label",
        "customer_order_no",
        "state",
        "outcome",
        "body_size",
        "remote_addr",
        "masked_body",
    )
    readonly_fields = fields

    @admin.display(description=_("供应商"), ordering="supplier_name")
    def supplier_label(self, obj: SupplierCallback) -> str:
        # An unknown supplier's callback has only the name it was sent to.
        return obj.supplier.name if obj.supplier else obj.supplier_name

    @admin.display(description=_("报文（签名已隐藏）"))
    def masked_body(self, obj: SupplierCallback) -> str:
        return format_html(
            '<pre style="white-space: pre-wrap; word-break: break-all">{}</pre>',
            masked_callback_body(obj.body),
        )
