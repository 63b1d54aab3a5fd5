"""A guest's way back to an order (/orders/lookup/), and claiming guest orders.

Thin views over orders/guest.py. The lookup answers the same words whether the
order exists or not, whether the email or the password was wrong; too many
tries from one address or for one order number get 429 with the form again.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import User
from config.lib.clientip import client_ip
from orders import guest
from orders.forms import OrderLookupForm

ERR_LOOKUP = gettext_lazy(
    "订单号、邮箱或查询密码不正确。请核对后重试（订单号见支付成功页和通知邮件）。"
)
ERR_LOOKUP_LIMITED = gettext_lazy("尝试次数过多，请 15 分钟后再试。")


@never_cache
@require_http_methods(["GET", "POST"])
def order_lookup(request: HttpRequest) -> HttpResponse:
    """A guest order by number, email and lookup password: its page, and this
    browser keeps access to that order (and only it)."""
    if request.method == "GET":
        return _lookup_page(request, OrderLookupForm())
    form = OrderLookupForm(request.POST)
    if guest.lookup_limited(
        ip=client_ip(request), number=request.POST.get("number", "")
    ):
        form.is_valid()  # field errors still shown where they apply
        form.add_error(None, ERR_LOOKUP_LIMITED)
        return _lookup_page(request, form, status=429)
    if not form.is_valid():
        return _lookup_page(request, form, status=400)
    order = guest.order_lookup(
        number=form.cleaned_data["number"],
        email=form.cleaned_data["email"],
        password=form.cleaned_data["password"],
    )
    if order is None:
        form.add_error(None, ERR_LOOKUP)
        return _lookup_page(request, form, status=400)
    guest.access_grant(request.session, order.number)
    return redirect("orders:order-detail", number=order.number)


def _lookup_page(
    request: HttpRequest, form: OrderLookupForm, *, status: int = 200
) -> HttpResponse:
    return render(request, "orders/order_lookup.html", {"form": form}, status=status)


@login_required
@require_POST
def guest_orders_claim(request: HttpRequest) -> HttpResponse:
    """Move the guest orders of the account's verified emails into it."""
    user = request.user
    assert isinstance(user, User)  # noqa: S101  (login_required)
    claimed = guest.guest_orders_claim(user)
    if claimed:
        messages.success(
            request,
            _("已将 %(n)d 笔用相同邮箱下的游客订单归入您的账号。") % {"n": claimed},
        )
    else:
        messages.info(request, _("没有可归入的游客订单。"))
    return redirect("orders:order-list")
