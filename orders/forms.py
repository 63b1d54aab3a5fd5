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
    recharge_account = forms.CharField(
        label=_("充值账号"),
        max_length=64,
        required=False,
        strip=True,
        error_messages={"max_length": _("充值账号最长 64 个字符")},
    )
    gateway = forms.ChoiceField(
        label=_("支付方式"),
        choices=[("sandbox", _("沙箱支付"))],
        required=False,
        error_messages={"invalid_choice": _("请选择可用的支付方式")},
    )

    def clean_gateway(self) -> str:
        return self.cleaned_data.get("gateway") or "sandbox"
