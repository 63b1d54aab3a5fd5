"""The reseller's forms: the application and the payout request."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from distribution.services.applications import CONTACT_MAX, DISPLAY_NAME_MAX, NOTE_MAX

ERR_NAME_REQUIRED = _("请填写对外显示的名称")
ERR_CONTACT_REQUIRED = _("请填写联系方式，方便我们审核时联系你")
ERR_AMOUNT_INVALID = _("提现金额无效，请刷新页面后重试")


class ResellerApplicationForm(forms.Form):
    display_name = forms.CharField(
        label=_("显示名称"),
        max_length=DISPLAY_NAME_MAX,
        help_text=_("你的分站和推广页面上显示的名称。"),
        error_messages={"required": ERR_NAME_REQUIRED},
    )
    contact = forms.CharField(
        label=_("联系方式"),
        max_length=CONTACT_MAX,
        help_text=_("微信、QQ 或手机号，审核和客户咨询时使用。"),
        error_messages={"required": ERR_CONTACT_REQUIRED},
    )
    note = forms.CharField(
        label=_("申请说明"),
        max_length=NOTE_MAX,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("选填：你打算如何推广，例如社群、公众号、门店。"),
    )


class PayoutRequestForm(forms.Form):
    """The amount the reseller saw and confirms: the request takes the whole
    available balance, so a stale page (the balance moved) is told so, not paid
    a surprise."""

    amount = forms.DecimalField(
        label=_("提现金额（元）"),
        max_digits=12,
        decimal_places=2,
        min_value=Decimal("0.01"),
        error_messages={
            "required": ERR_AMOUNT_INVALID,
            "invalid": ERR_AMOUNT_INVALID,
            "min_value": ERR_AMOUNT_INVALID,
            "max_digits": ERR_AMOUNT_INVALID,
            "max_decimal_places": ERR_AMOUNT_INVALID,
            "max_whole_digits": ERR_AMOUNT_INVALID,
        },
    )
