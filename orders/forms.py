from __future__ import annotations

from typing import Any, cast

from captcha.fields import CaptchaField
from django import forms
from django.utils.translation import gettext_lazy as _

from orders.gateways import gateway_default, gateways_all

ERR_NO_GATEWAY = _("暂无可用的支付方式，请稍后再试")


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
        choices=[],  # the enabled gateways, set per form
        required=False,
        widget=forms.RadioSelect,
        error_messages={"invalid_choice": _("请选择可用的支付方式")},
    )

    def __init__(self, *args: Any, captcha: bool = False, **kwargs: Any) -> None:
        """With `captcha`, the submitted answer to the risk check's captcha is checked too."""
        super().__init__(*args, **kwargs)
        gateway = cast(forms.ChoiceField, self.fields["gateway"])
        gateway.choices = [(g.name, g.label) for g in gateways_all()]
        if captcha:
            self.ask_captcha()

    def ask_captcha(self) -> None:
        """The page asks for a captcha (risk/checkout.py): the field is shown from now on."""
        if "captcha" not in self.fields:
            # One attempt per image (django-simple-captcha deletes it either way).
            self.fields["captcha"] = CaptchaField(
                label=_("验证码"),
                error_messages={
                    "required": _("请输入图中的验证码"),
                    "incomplete": _("请输入图中的验证码"),
                    "invalid": _("验证码不正确，请看新的图片重新输入"),
                },
            )

    def clean_gateway(self) -> str:
        """The chosen gateway, or the first enabled one when none was chosen."""
        chosen = self.cleaned_data.get("gateway")
        if chosen:
            return str(chosen)
        default = gateway_default()
        if default is None:
            raise forms.ValidationError(ERR_NO_GATEWAY, code="no_gateway")
        return default.name
