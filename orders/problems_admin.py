"""Problem reports in admin: the queue, and the one answer an operator gives each.

An open report is answered once (orders/services/problems.py): replace the
code (from stock; the old one voided, kept linked to its line, its batch
flagged), refund the line, or reply. Answering needs
`orders.change_problemreport`; the report itself is never editable. Also here,
read-only: every code taken back from a line (ReturnedCode) and the batches
flagged after replacements (BatchFlag).
"""

from __future__ import annotations

import secrets
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from config.admin import ReadOnlyAdminMixin
from config.lib.errors import DomainError
from fulfillment.models import CardCode
from orders.models import BatchFlag, ProblemReport, ReturnedCode
from orders.models.aftersales import MESSAGE_MAX
from orders.services.problems import (
    problem_report_refund,
    problem_report_replace,
    problem_report_reply,
)

MSG_ANSWERED = {
    "replace": _("已为顾客更换卡密，并发送了通知邮件。"),
    "refund": _("已为该明细退款，并发送了通知邮件。"),
    "reply": _("已回复顾客，并发送了通知邮件。"),
}


class AnswerForm(forms.Form):
    DECISIONS = (
        ("reply", _("仅回复")),
        ("replace", _("更换卡密（旧卡密作废，从库存补发）")),
        ("refund", _("退款（该明细剩余金额，卡密作废）")),
    )

    decision = forms.ChoiceField(
        label=_("处理方式"), choices=DECISIONS, widget=forms.RadioSelect
    )
    codes = forms.TypedMultipleChoiceField(
        label=_("要更换的卡密"),
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("不选则更换顾客指出的那张（明细只有一张时即为该张）。"),
    )
    reply = forms.CharField(
        label=_("回复顾客"),
        max_length=MESSAGE_MAX,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
        help_text=_(
            "顾客会在订单页和邮件中看到；更换或退款时也作为作废/退款原因记录。"
        ),
        error_messages={
            "required": _("请填写回复"),
            "max_length": _("回复最长 1000 个字"),
            "null_characters_not_allowed": _("内容含有不允许的字符"),
        },
    )
    request_key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args: Any, codes: list[CardCode], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Masked hints only: plaintext never reaches admin.
        field = self.fields["codes"]
        assert isinstance(field, forms.TypedMultipleChoiceField)  # noqa: S101
        field.choices = [(c.id, f"{c.hint} (#{c.id})") for c in codes]


def _actor(request: HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied
    return user


@admin.register(ProblemReport)
class ProblemReportAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "created_at",
        "order",
        "line_name",
        "kind",
        "status",
        "short_message",
        "answer_link",
        "resolved_by",
        "resolved_at",
    )
    list_filter = ("status", "kind", "created_at")
    list_select_related = ("order", "line", "resolved_by")
    search_fields = ("=order__number", "order__email")
    raw_id_fields = ("order", "line", "code", "reporter", "resolved_by")
    date_hierarchy = "created_at"
    fields = (
        "order",
        "line",
        "code_hint",
        "reporter",
        "kind",
        "message",
        "status",
        "reply",
        "resolved_by",
        "resolved_at",
        "created_at",
        "language",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[ProblemReport]:
        return super().get_queryset(request).select_related("code")

    def has_answer_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.change_problemreport")

    @admin.display(description=_("订单明细"))
    def line_name(self, obj: ProblemReport) -> str:
        return f"#{obj.line_id} {obj.line.sku_name}"

    @admin.display(description=_("卡密"))
    def code_hint(self, obj: ProblemReport) -> str:
        return obj.code.hint if obj.code is not None else "—"

    @admin.display(description=_("问题描述"))
    def short_message(self, obj: ProblemReport) -> str:
        return format_html(
            '<span title="{}">{}</span>', obj.message, Truncator(obj.message).chars(30)
        )

    @admin.display(description=_("处理"))
    def answer_link(self, obj: ProblemReport) -> str:
        if obj.status != ProblemReport.Status.OPEN:
            return "—"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:orders_problemreport_answer", args=[obj.pk]),
            _("处理"),
        )

    def get_urls(self) -> list[URLPattern]:
        answer = path(
            "<path:object_id>/answer/",
            self.admin_site.admin_view(self.answer_view),
            name="orders_problemreport_answer",
        )
        return [answer, *super().get_urls()]

    def answer_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: the report, the line's codes and the three answers. POST: answer."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        report = self.get_object(request, unquote(object_id))
        if report is None:
            raise Http404
        can_answer = self.has_answer_permission(request)
        codes = list(
            CardCode.objects.filter(
                order_line_id=report.line_id, status=CardCode.Status.SOLD
            )
            .only("id", "hint")
            .order_by("id")
        )
        form = AnswerForm(
            codes=codes,
            initial={
                "request_key": secrets.token_urlsafe(16),
                "codes": [report.code_id] if report.code_id else [],
            },
        )
        status = 200
        if request.method == "POST":
            if not can_answer:
                raise PermissionDenied
            form = AnswerForm(request.POST, codes=codes)
            if form.is_valid():
                done = self._answer(request, report, form)
                if done is not None:
                    return done
            status = 400
        return TemplateResponse(
            request,
            "admin/orders/problemreport/answer.html",
            {
                **self.admin_site.each_context(request),
                "title": _("处理问题反馈 #%(id)s") % {"id": report.pk},
                "opts": self.opts,
                "original": report,
                "is_open": report.status == ProblemReport.Status.OPEN,
                "can_answer": can_answer,
                "form": form,
                "returned": ReturnedCode.objects.filter(line_id=report.line_id)
                .select_related("code")
                .order_by("-id"),
            },
            status=status,
        )

    def _answer(
        self, request: HttpRequest, report: ProblemReport, form: AnswerForm
    ) -> HttpResponse | None:
        decision = form.cleaned_data["decision"]
        reply = form.cleaned_data["reply"]
        actor = _actor(request)
        try:
            if decision == "replace":
                problem_report_replace(
                    report_id=report.pk,
                    actor=actor,
                    reply=reply,
                    code_ids=form.cleaned_data["codes"] or None,
                )
            elif decision == "refund":
                problem_report_refund(
                    report_id=report.pk,
                    actor=actor,
                    reply=reply,
                    request_key=form.cleaned_data["request_key"],
                )
            else:
                problem_report_reply(report_id=report.pk, actor=actor, reply=reply)
        except DomainError as exc:
            field = getattr(exc, "field", None)
            field = {"message": "reply"}.get(field or "", field)
            form.add_error(field if field in form.fields else None, exc.message)
            return None
        messages.success(request, MSG_ANSWERED[decision])
        return HttpResponseRedirect(
            reverse("admin:orders_problemreport_change", args=[report.pk])
        )


@admin.register(ReturnedCode)
class ReturnedCodeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "created_at",
        "code_hint",
        "line",
        "batch",
        "outcome",
        "cause",
        "was_revealed",
        "reason",
        "actor",
    )
    list_filter = ("outcome", "cause", "was_revealed", "created_at")
    list_select_related = ("code", "line", "batch", "actor")
    raw_id_fields = ("code", "line", "batch", "report", "actor")
    search_fields = ("=line__order__number",)
    fields = (
        "code_hint",
        "line",
        "batch",
        "outcome",
        "cause",
        "was_revealed",
        "reason",
        "report",
        "actor",
        "created_at",
    )
    readonly_fields = fields

    @admin.display(description=_("卡密"))
    def code_hint(self, obj: ReturnedCode) -> str:
        return obj.code.hint


@admin.register(BatchFlag)
class BatchFlagAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "batch_link",
        "replaced_count",
        "last_reason",
        "flagged_at",
        "updated_at",
    )
    list_select_related = ("batch",)
    fields = ("batch_link", "replaced_count", "last_reason", "flagged_at", "updated_at")
    readonly_fields = fields

    @admin.display(description=_("批次"))
    def batch_link(self, obj: BatchFlag) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:fulfillment_codebatch_change", args=[obj.batch_id]),
            obj.batch,
        )
