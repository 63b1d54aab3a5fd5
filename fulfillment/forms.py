"""Operator forms: the code import (upload, then confirm the preview) and the SKU form."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from catalog.models import Sku
from fulfillment import codefile
from fulfillment.selectors import card_code_exists_for_sku
from fulfillment.services import code_expiry_for_date

ERR_EXPIRES_IN_PAST = _("最后有效日期不能早于今天")
ERR_FILE_TOO_LARGE = _(
    "文件超过 8 MiB：网页导入在一次请求内完成，请拆分文件，或在服务器上用 import_codes 命令导入"
)


class CardCodeSkuChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Sku) -> str:
        return f"{obj.code} · {obj.product.name} {obj.name}"


class CodeImportForm(forms.Form):
    """Step 1: which SKU, which file, and what the batch records about it."""

    sku = CardCodeSkuChoiceField(
        label=_("SKU"),
        queryset=Sku.objects.filter(delivery=Sku.Delivery.CARD_CODE)
        .select_related("product")
        .order_by("code"),
    )
    file = forms.FileField(
        label=_("卡密文件"),
        help_text=_("TXT 每行一个卡密；CSV 或 XLSX 第一行为表头，含 code 列。"),
    )
    source = forms.CharField(label=_("来源"), max_length=100, required=False)
    cost_price = forms.DecimalField(
        label=_("进价（每张）"),
        required=False,
        min_value=Decimal("0"),
        max_digits=10,
        decimal_places=2,
    )
    expires = forms.DateField(
        label=_("最后有效日期"),
        required=False,
        help_text=_("卡密在这一天结束前可售；留空表示不过期。"),
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    note = forms.CharField(label=_("备注"), max_length=200, required=False)

    def clean_file(self) -> UploadedFile:
        upload: UploadedFile = self.cleaned_data["file"]
        if upload.size is not None and upload.size > codefile.ADMIN_MAX_FILE_BYTES:
            raise forms.ValidationError(ERR_FILE_TOO_LARGE)
        try:
            codefile.file_format(upload.name or "")
        except codefile.MalformedFileError as exc:
            raise forms.ValidationError(exc.message) from None
        return upload

    def clean_expires(self) -> dt.date | None:
        day: dt.date | None = self.cleaned_data.get("expires")
        if day is not None and day < timezone.localdate():
            raise forms.ValidationError(ERR_EXPIRES_IN_PAST)
        return day

    def import_options(self) -> dict[str, Any]:
        """The batch fields, as plain values that can wait in the cache until confirm."""
        data = self.cleaned_data
        return {
            "sku_id": data["sku"].pk,
            "file_name": data["file"].name,
            "source": data["source"],
            "cost_price": str(data["cost_price"])
            if data["cost_price"] is not None
            else None,
            "expires": data["expires"].isoformat() if data["expires"] else None,
            "note": data["note"],
        }


class CodeImportConfirmForm(forms.Form):
    """Step 2: the token of the encrypted upload waiting in the cache."""

    token = forms.CharField(widget=forms.HiddenInput, max_length=64)


def expires_at_from_date(day: dt.date | None) -> dt.datetime | None:
    """The batch expiry for an optional date field (the rule of `import_codes --expires`)."""
    return code_expiry_for_date(day) if day is not None else None


ERR_DELIVERY_LOCKED = _("该 SKU 已有卡密入库，不能再更改发货方式；请新建一个 SKU")


class SkuAdminForm(forms.ModelForm):
    class Meta:
        model = Sku
        fields = "__all__"  # noqa: DJ007 (the admin's fieldsets choose what is shown)

    def clean_delivery(self) -> str:
        delivery: str = self.cleaned_data["delivery"]
        # Codes in the vault (available, sold or void) belong to a card-code SKU for good.
        if (
            self.instance.pk
            and delivery != self.instance.delivery
            and card_code_exists_for_sku(sku_id=self.instance.pk)
        ):
            raise forms.ValidationError(ERR_DELIVERY_LOCKED)
        return delivery
