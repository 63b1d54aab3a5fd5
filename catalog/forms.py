"""Operator forms for the catalog."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from catalog.models import Sku
from fulfillment.selectors import card_code_exists_for_sku

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
