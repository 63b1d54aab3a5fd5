"""After-sales in admin: one page per order to refund, re-deliver (补单) and confirm paid.

Mixed into OrderAdmin (orders/admin.py) like the review queue: the order admin
stays read-only, and these three actions go through services
(orders/services/aftersales.py), each with a reason and the operator's name on
the order's history. Refund and 补单 need `orders.change_order`, as review
decisions do; confirm paid (money in on an operator's word) needs its own
`orders.confirm_paid`, and its form is shown only to those who hold it.

A double click changes nothing twice: the refund form carries a one-time key
(a second submission finds the first refund), 补单 refuses a delivered line and
confirm-paid answers "done" for a trade already recorded.
"""

from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from config.lib.errors import DomainError
from orders.gateways import gateways_all
from orders.models import Order, OrderLine, ProblemReport
from orders.services.aftersales import (
    REASON_MAX,
    REDELIVERABLE_STATES,
    REFUNDABLE_STATES,
    AfterSalesError,
    order_line_redeliver,
    order_refund_by_operator,
)
from orders.services.confirm_paid import TRADE_NO_MAX, order_confirm_paid

MSG_REFUNDED = _("已提交退款 ¥%(amount)s（退款单 %(refund_no)s），款项将原路退回。")
MSG_REDELIVERED = _("明细 #%(line)s 已补单发货。")
MSG_TOPUP_RETRIED = _("明细 #%(line)s 的直充已重新查询/提交。")
MSG_CONFIRMED = {
    "paid": _("已确认到账并继续发货。"),
    "refunded": _("已确认到账；库存已不足，款项将原路退回。"),
    "duplicate": _("该交易已入账，未重复处理。"),
}
MSG_REFUSED = _("未处理：%(error)s")

REASON_ERRORS = {
    "required": _("请填写原因"),
    "max_length": _("原因最长 200 个字"),
    "null_characters_not_allowed": _("内容含有不允许的字符"),
}


def _reason_field(label: Any, help_text: Any) -> forms.CharField:
    return forms.CharField(
        label=label,
        max_length=REASON_MAX,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text=help_text,
        error_messages=REASON_ERRORS,
    )


class RefundForm(forms.Form):
    """Whole order, or an amount per line (any line left empty is not refunded)."""

    SCOPES = (("whole", _("整单全额退款")), ("lines", _("按明细退款（可部分退款）")))
    CODES = (
        ("void", _("作废（默认）")),
        ("restock", _("未查看的卡密退回库存")),
    )

    scope = forms.ChoiceField(
        label=_("退款范围"), choices=SCOPES, initial="whole", widget=forms.RadioSelect
    )
    codes = forms.ChoiceField(
        label=_("全额退款明细的卡密"),
        choices=CODES,
        initial="void",
        widget=forms.RadioSelect,
        help_text=_("已查看过的卡密一律作废。部分退款不收回卡密。"),
    )
    reason = _reason_field(_("退款原因"), _("会显示给顾客，并记入退款记录。"))
    request_key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args: Any, lines: list[OrderLine], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lines = lines
        for line in lines:
            self.fields[f"amount_{line.id}"] = forms.DecimalField(
                label=f"#{line.id} {line.sku_name} × {line.quantity}",
                required=False,
                max_digits=12,
                decimal_places=2,
                min_value=Decimal("0.01"),
                max_value=line.refundable_amount,
                help_text=_("最多可退 ¥%(max)s") % {"max": line.refundable_amount},
                error_messages={
                    "invalid": _("请输入金额，例如 12.50"),
                    "max_decimal_places": _("金额最多两位小数"),
                    "min_value": _("金额须大于 0"),
                    "max_value": _("最多可退 ¥%(limit_value)s"),
                },
            )

    def amount_fields(self) -> list[forms.BoundField]:
        return [self[f"amount_{line.id}"] for line in self.lines]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("scope") == "lines" and not any(
            data.get(f"amount_{line.id}") for line in self.lines
        ):
            raise forms.ValidationError(_("请至少为一个明细填写退款金额"))
        return data

    def amounts(self) -> dict[int, Decimal] | None:
        if self.cleaned_data["scope"] == "whole":
            return None
        return {
            line.id: self.cleaned_data[f"amount_{line.id}"]
            for line in self.lines
            if self.cleaned_data.get(f"amount_{line.id}")
        }


class ConfirmPaidForm(forms.Form):
    gateway = forms.ChoiceField(label=_("支付方式"))
    trade_no = forms.CharField(
        label=_("网关交易号"),
        max_length=TRADE_NO_MAX,
        strip=True,
        help_text=_("将向支付网关查询核实：交易必须存在、已支付、金额与订单一致。"),
        error_messages={
            "required": _("请填写网关交易号"),
            "max_length": _("网关交易号最长 64 位"),
            "null_characters_not_allowed": _("内容含有不允许的字符"),
        },
    )
    reason = _reason_field(_("确认原因"), _("例如：顾客提供的支付凭证；记入订单记录。"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        gateway = self.fields["gateway"]
        assert isinstance(gateway, forms.ChoiceField)  # noqa: S101
        gateway.choices = [(g.name, g.label) for g in gateways_all()]


def _actor(request: HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied
    return user


def _add_error(form: forms.Form, exc: DomainError) -> None:
    """A refusal goes to its field when the service names one on this form."""
    field = getattr(exc, "field", None)
    form.add_error(field if field in form.fields else None, exc.message)


class AfterSalesMixin:
    """Mixed into OrderAdmin: the order's 售后 page (refund, 补单, confirm paid)."""

    admin_site: admin.AdminSite
    opts: Any

    def has_aftersales_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.change_order")

    def has_confirm_paid_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.confirm_paid")

    def get_urls(self) -> list[URLPattern]:
        page = path(
            "<path:object_id>/aftersales/",
            self.admin_site.admin_view(self.aftersales_view),
            name="orders_order_aftersales",
        )
        # Before the defaults: their "<path:object_id>/" catch-all would swallow it.
        return [page, *super().get_urls()]  # type: ignore[misc]

    def aftersales_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: what can be done for this order. POST `action`: do one thing."""
        if not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        order = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
        if order is None:
            raise Http404
        can_act = self.has_aftersales_permission(request)
        may_confirm = self.has_confirm_paid_permission(request)
        lines = [
            line
            for line in OrderLine.objects.filter(order=order).select_related("topup")
            if not line.is_bundle
        ]
        refundable = [line for line in lines if line.refundable_amount > 0]
        refund_form = RefundForm(
            lines=refundable, initial={"request_key": secrets.token_urlsafe(16)}
        )
        confirm_form = ConfirmPaidForm()
        status = 200
        if request.method == "POST":
            action = request.POST.get("action")
            if not (may_confirm if action == "confirm_paid" else can_act):
                raise PermissionDenied
            done: HttpResponse | None = None
            if action == "refund":
                refund_form = RefundForm(request.POST, lines=refundable)
                done = self._refund(request, order, refund_form)
            elif action == "redeliver":
                done = self._redeliver(request, order)
            elif action == "confirm_paid":
                confirm_form = ConfirmPaidForm(request.POST)
                done = self._confirm_paid(request, order, confirm_form)
            if done is not None:
                return done
            status = 400
        confirmable = order.status in (Order.Status.PENDING, Order.Status.CANCELLED)
        stuck = [
            line
            for line in lines
            if line.status in (OrderLine.Status.RESERVED, OrderLine.Status.DELIVERING)
        ]
        return TemplateResponse(
            request,
            "admin/orders/order/aftersales.html",
            {
                **self.admin_site.each_context(request),
                "title": _("售后：订单 %(number)s") % {"number": order.number},
                "opts": self.opts,
                "original": order,
                "can_act": can_act,
                "may_confirm": may_confirm,
                "lines": lines,
                "refund_form": refund_form,
                "can_refund": order.status in REFUNDABLE_STATES and bool(refundable),
                "stuck": stuck if order.status in REDELIVERABLE_STATES else [],
                "confirm_form": confirm_form,
                "confirmable": confirmable,
                "can_confirm": may_confirm and confirmable,
                "reports": ProblemReport.objects.filter(order=order)
                .select_related("line")
                .order_by("-id"),
            },
            status=status,
        )

    def _back(self, order: Order) -> HttpResponse:
        return HttpResponseRedirect(
            reverse("admin:orders_order_aftersales", args=[order.pk])
        )

    def _refund(
        self, request: HttpRequest, order: Order, form: RefundForm
    ) -> HttpResponse | None:
        if not form.is_valid():
            return None
        try:
            refund = order_refund_by_operator(
                order_id=order.pk,
                amounts=form.amounts(),
                reason=form.cleaned_data["reason"],
                actor=_actor(request),
                codes=form.cleaned_data["codes"],
                request_key=form.cleaned_data["request_key"],
            )
        except DomainError as exc:
            _add_error(form, exc)
            return None
        messages.success(
            request,
            MSG_REFUNDED % {"amount": refund.amount, "refund_no": refund.refund_no},
        )
        return self._back(order)

    def _redeliver(self, request: HttpRequest, order: Order) -> HttpResponse:
        try:
            line_id = int(request.POST.get("line", ""))
            if not OrderLine.objects.filter(pk=line_id, order=order).exists():
                raise ValueError(line_id)
        except ValueError:
            raise Http404 from None
        try:
            done = order_line_redeliver(line_id=line_id, actor=_actor(request))
        except AfterSalesError as exc:
            messages.error(request, MSG_REFUSED % {"error": exc.message})
        else:
            message = (
                MSG_REDELIVERED if done.outcome == "delivered" else MSG_TOPUP_RETRIED
            )
            messages.success(request, message % {"line": line_id})
        return self._back(order)

    def _confirm_paid(
        self, request: HttpRequest, order: Order, form: ConfirmPaidForm
    ) -> HttpResponse | None:
        if not form.is_valid():
            return None
        try:
            done = order_confirm_paid(
                order_id=order.pk,
                gateway_name=form.cleaned_data["gateway"],
                trade_no=form.cleaned_data["trade_no"],
                reason=form.cleaned_data["reason"],
                actor=_actor(request),
            )
        except DomainError as exc:
            _add_error(form, exc)
            return None
        messages.success(
            request, MSG_CONFIRMED.get(done.outcome, MSG_CONFIRMED["paid"])
        )
        return HttpResponseRedirect(
            reverse("admin:orders_order_change", args=[order.pk])
        )
