"""The review queue: paid orders a risk rule held, and what an operator does with them.

A paid order held by the risk engine's paid-stage check waits in `review`, its
stock reserved, nothing delivered (orders/services/payments.py). Here operators
find those orders (the "风控审核" filter, oldest payment first), see why each was
held (the rules that fired in its paid-stage evaluation, and the hold reason in
its history), and approve (delivery goes on: order_review_approve) or reject
with a reason (every line refunded: order_review_reject).

Both decisions need `orders.change_order`, which means exactly this: the order
admin stays read-only whoever asks. A second click (or a second operator) finds
the order no longer in review; the service refuses and the page says so, nothing
happens twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from config.lib.errors import DomainError
from orders.models import Order, OrderEvent
from orders.services import order_review_approve, order_review_reject
from risk.models import RiskEvaluation

MSG_APPROVED = _("已审核通过 %(count)d 笔订单，继续发货。")
MSG_REJECTED = _("已拒绝 %(count)d 笔订单，款项将原路退回。")
MSG_REFUSED = _("订单 %(order)s 未处理：%(error)s")
MSG_NOT_IN_REVIEW = _("订单 %(order)s 已不在审核中（可能已被处理），未做任何操作。")
REASON_MAX = 200  # Refund.reason and the lines' status_reason


class RejectForm(forms.Form):
    reason = forms.CharField(
        label=_("拒绝原因"),
        max_length=REASON_MAX,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("会显示给顾客，并记入退款记录。"),
        error_messages={
            "required": _("请填写拒绝原因"),
            "max_length": _("拒绝原因最长 200 个字"),
        },
    )


@dataclass(frozen=True)
class FiredRule:
    name: str
    kind: str
    action: str
    detail: str


@dataclass(frozen=True)
class HeldBecause:
    """Why an order is held: its latest paid-stage evaluation and the review events."""

    evaluation: RiskEvaluation | None
    fired: list[FiredRule]
    hold_reasons: list[str]


def _fired_rules(fired: Any) -> list[FiredRule]:
    """The evaluation's `fired` JSON as rows (tolerant: it is data, not code)."""
    rows = []
    for item in fired if isinstance(fired, list) else []:
        if isinstance(item, dict):
            rows.append(
                FiredRule(
                    name=str(item.get("name", "")),
                    kind=str(item.get("kind", "")),
                    action=str(item.get("action", "")),
                    detail=str(item.get("detail", "")),
                )
            )
        else:
            rows.append(FiredRule(name=str(item), kind="", action="", detail=""))
    return rows


def order_held_because(*, order_id: int) -> HeldBecause:
    """Why this order was held for review (two queries)."""
    evaluation = (
        RiskEvaluation.objects.filter(order_id=order_id, stage="paid")
        .order_by("-created_at", "-id")
        .first()
    )
    reasons = [
        str(detail.get("reason", ""))
        for detail in OrderEvent.objects.filter(
            order_id=order_id, kind=OrderEvent.Kind.REVIEW
        )
        .order_by("id")
        .values_list("detail", flat=True)
        if isinstance(detail, dict)
    ]
    return HeldBecause(
        evaluation=evaluation,
        fired=_fired_rules(evaluation.fired) if evaluation is not None else [],
        hold_reasons=reasons,
    )


class ReviewQueueFilter(admin.SimpleListFilter):
    """The queue: orders waiting for an operator's decision, oldest payment first."""

    title = _("风控审核")
    parameter_name = "review"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("waiting", _("待审核"))]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[Order]
    ) -> QuerySet[Order] | None:
        if self.value() == "waiting":
            return queryset.filter(status=Order.Status.REVIEW)
        return None


def _actor(request: HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied
    return user


def _decide(
    request: HttpRequest, orders: list[tuple[int, str]], *, reject_reason: str = ""
) -> int:
    """Approve (or, with a reason, reject) each order; every refusal is a message."""
    actor = _actor(request)
    done = 0
    for order_id, number in orders:
        try:
            if reject_reason:
                order_review_reject(
                    order_id=order_id, actor=actor, reason=reject_reason
                )
            else:
                order_review_approve(order_id=order_id, actor=actor)
        except DomainError as exc:
            still = Order.objects.filter(pk=order_id, status=Order.Status.REVIEW)
            if still.exists():
                messages.error(
                    request, MSG_REFUSED % {"order": number, "error": exc.message}
                )
            else:  # a double click, or another operator was first
                messages.warning(request, MSG_NOT_IN_REVIEW % {"order": number})
        else:
            done += 1
    if done:
        message = MSG_REJECTED if reject_reason else MSG_APPROVED
        messages.success(request, message % {"count": done})
    return done


class ReviewQueueMixin:
    """Mixed into OrderAdmin: the hold reason, approve and reject (its `actions`
    name approve_review and reject_review; its list_filter ReviewQueueFilter)."""

    admin_site: admin.AdminSite
    opts: Any

    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.change_order")

    def get_ordering(self, request: HttpRequest) -> list[str] | tuple[str, ...]:
        if request.GET.get(ReviewQueueFilter.parameter_name) == "waiting":
            return ("paid_at", "id")  # the queue: whoever has waited longest first
        return super().get_ordering(request)  # type: ignore[misc,no-any-return]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Order]:
        # The latest hold reason, in the list's own query (no query per row).
        reason = (
            OrderEvent.objects.filter(order=OuterRef("pk"), kind=OrderEvent.Kind.REVIEW)
            .order_by("-id")
            .values("detail__reason")[:1]
        )
        queryset: QuerySet[Order] = super().get_queryset(request)  # type: ignore[misc]
        return queryset.annotate(hold_reason=Subquery(reason))

    @admin.display(description=_("审核原因"))
    def review_reason(self, obj: Order) -> str:
        if obj.status != Order.Status.REVIEW:
            return "—"
        reason = str(getattr(obj, "hold_reason", "") or "")
        return format_html(
            '<a href="{}" title="{}">{}</a>',
            reverse("admin:orders_order_review", args=[obj.pk]),
            reason,
            Truncator(reason or str(_("待审核"))).chars(30),
        )

    # --- actions on the list ---

    def _selected(self, queryset: QuerySet[Order]) -> list[tuple[int, str]]:
        # Orders no longer in review are refused one by one, with a message.
        return list(queryset.order_by("pk").values_list("pk", "number"))

    @admin.action(description=_("审核通过（继续发货）"), permissions=["review"])
    def approve_review(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        _decide(request, self._selected(queryset))

    @admin.action(description=_("审核拒绝（全额退款）"), permissions=["review"])
    def reject_review(
        self, request: HttpRequest, queryset: QuerySet[Order]
    ) -> HttpResponse | None:
        """A page asking for the reason first; the refunds follow its submission."""
        orders = self._selected(queryset)
        form = RejectForm(request.POST if "reason" in request.POST else None)
        if form.is_bound and form.is_valid():
            _decide(request, orders, reject_reason=form.cleaned_data["reason"])
            return None
        return TemplateResponse(
            request,
            "admin/orders/order/review_reject.html",
            {
                **self.admin_site.each_context(request),
                "title": _("审核拒绝并退款"),
                "opts": self.opts,
                "form": form,
                "orders": orders,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            },
            status=400 if form.is_bound else 200,
        )

    # --- one order's review page ---

    def get_urls(self) -> list[URLPattern]:
        review = path(
            "<path:object_id>/review/",
            self.admin_site.admin_view(self.review_view),
            name="orders_order_review",
        )
        # Before the defaults: their "<path:object_id>/" catch-all would swallow it.
        return [review, *super().get_urls()]  # type: ignore[misc]

    def review_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: why the order is held and the two decisions. POST: decide."""
        if not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        order = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
        if order is None:
            raise Http404
        can_decide = self.has_review_permission(request)
        form = RejectForm()
        status = 200
        if request.method == "POST":
            if not can_decide:
                raise PermissionDenied
            decision = request.POST.get("decision")
            if decision == "approve":
                _decide(request, [(order.pk, order.number)])
                return HttpResponseRedirect(
                    reverse("admin:orders_order_change", args=[order.pk])
                )
            if decision == "reject":
                form = RejectForm(request.POST)
                if form.is_valid():
                    _decide(
                        request,
                        [(order.pk, order.number)],
                        reject_reason=form.cleaned_data["reason"],
                    )
                    return HttpResponseRedirect(
                        reverse("admin:orders_order_change", args=[order.pk])
                    )
            status = 400
        return TemplateResponse(
            request,
            "admin/orders/order/review.html",
            {
                **self.admin_site.each_context(request),
                "title": _("人工审核：订单 %(number)s") % {"number": order.number},
                "opts": self.opts,
                "original": order,
                "held": order_held_because(order_id=order.pk),
                "in_review": order.status == Order.Status.REVIEW,
                "can_decide": can_decide,
                "form": form,
            },
            status=status,
        )
