from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _


class CheckoutForm(forms.Form):
    sku = forms.CharField(max_length=40)
    quantity = forms.IntegerField(
        label=_("数量"),
        min_value=1,
        max_value=100,
        error_messages={
            "invalid": _("请输入有效的数量"),
            "min_value": _("数量至少为 1"),
            "max_value": _("单笔最多购买 100 件"),
        },
    )
    token = forms.CharField(max_length=64, required=False, widget=forms.HiddenInput)
