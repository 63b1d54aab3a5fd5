"""The shopper's after-sales on the order page: one-click refund, problem reports.

Thin views: the order is the shopper's own, their account's or a guest order
this browser has access to (orders/access.py; 404 otherwise, as everywhere: order
numbers are never confirmed to exist), the line one of its lines (404), one
service call, and back to the order page with the outcome said at once; a bad
report comes back on the order page with its errors at their fields (400).
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from config.lib.errors import DomainError
from orders.access import (
    login_needed,
    order_page_context,
    shopper_actor,
    shopper_order_or_404,
)
from orders.aftersales_forms import ProblemReportForm
from orders.models import Order, OrderLine
from orders.services.problems import ProblemReportError, problem_report_open
from orders.services.self_refund import line_self_refund


def _order_and_line(
    request: HttpRequest, number: str, line_id: int
) -> tuple[Order, OrderLine]:
    order = shopper_order_or_404(request, number)
    line = next((x for x in order.lines.all() if x.id == line_id), None)
    if line is None:
        raise Http404
    return order, line


@login_needed
@never_cache
@require_POST
def line_refund(request: HttpRequest, number: str, line_id: int) -> HttpResponse:
    """One click: the line's unrevealed codes go back, their money follows."""
    order, line = _order_and_line(request, number, line_id)
    try:
        done = line_self_refund(
            order_id=order.id,
            line_id=line.id,
            user=shopper_actor(request, order),
            language=get_language() or "",
        )
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            _("已退回 %(codes)d 张未查看的卡密，¥%(amount)s 将原路退回您的支付账户。")
            % {"codes": done.codes, "amount": done.amount},
        )
    return redirect("orders:order-detail", number=order.number)


@login_needed
@never_cache
@require_POST
def line_report(request: HttpRequest, number: str, line_id: int) -> HttpResponse:
    """Report a problem with a delivered line; errors come back at their fields."""
    order, line = _order_and_line(request, number, line_id)
    form = ProblemReportForm(
        request.POST,
        code_choices=[(c.id, c.hint) for c in line.codes.all()],
    )
    if form.is_valid():
        try:
            problem_report_open(
                order=order,
                line_id=line.id,
                user=shopper_actor(request, order),
                kind=form.cleaned_data["kind"],
                message=form.cleaned_data["message"],
                code_id=form.cleaned_data["code"],
                language=get_language() or "",
            )
        except ProblemReportError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(
                request, _("已收到您的问题反馈，客服处理后会在此页和邮件中回复您。")
            )
            return redirect("orders:order-detail", number=order.number)
    context = order_page_context(request, order)
    context["report_form"] = form
    context["report_line_id"] = line.id
    return render(request, "orders/order_detail.html", context, status=400)
