"""The shopper's after-sales forms: a problem report on a delivered line."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from orders.models import ProblemReport
from orders.models.aftersales import MESSAGE_MAX


class ProblemReportForm(forms.Form):
    """What went wrong, which code (when the line has several) and the shopper's words.

    A NUL byte, a message too long or a made-up choice are errors at their field
    (Django's CharField refuses NUL by default; the message is said here).
    """

    kind = forms.ChoiceField(
        label=_("问题类型"),
        choices=ProblemReport.Kind.choices,
        widget=forms.RadioSelect,
        error_messages={
            "required": _("请选择问题类型"),
            "invalid_choice": _("请选择问题类型"),
        },
    )
    code = forms.TypedChoiceField(
        label=_("哪一张卡密"),
        coerce=int,
        required=False,
        empty_value=None,
        error_messages={"invalid_choice": _("请选择该明细中的一张卡密")},
    )
    message = forms.CharField(
        label=_("问题描述"),
        max_length=MESSAGE_MAX,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": MESSAGE_MAX}),
        error_messages={
            "required": _("请描述遇到的问题"),
            "max_length": _("问题描述最长 1000 个字"),
            "null_characters_not_allowed": _("内容含有不允许的字符"),
        },
    )

    def __init__(
        self, *args: Any, code_choices: list[tuple[int, str]], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["code"]
        assert isinstance(field, forms.TypedChoiceField)  # noqa: S101
        field.choices = [("", _("不确定 / 全部")), *code_choices]
