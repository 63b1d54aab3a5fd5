"""The shopper's order pages: my orders, one order (an account's, or a guest
order this browser has access to: orders/access.py), and revealing a code."""

from __future__ import annotations

from typing import Any, cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.models import User
from config.lib.clientip import client_ip
from config.lib.errors import DomainError
from orders import guest, selectors, services
from orders.access import (
    LoginNeeded,
    login_needed,
    order_page_context,
    shopper_actor,
    shopper_order,
    shopper_order_or_404,
)
from orders.models import Order

ORDERS_PER_PAGE = 20


class CountedPaginator(Paginator):  # type: ignore[type-arg]
    """A Paginator told its count (counted with something else already)."""

    def __init__(self, object_list: Any, per_page: int, *, count: int) -> None:
        super().__init__(object_list, per_page)
        self.known_count = count

    @cached_property
    def count(self) -> int:
        return self.known_count


@login_required
def order_list(request: HttpRequest) -> HttpResponse:
    # One query counts both the account's orders (for the pages) and the guest
    # orders of its verified emails waiting to be claimed.
    user = cast(User, request.user)
    mine, claimable = guest.order_counts(user)
    paginator = CountedPaginator(
        selectors.order_list_for_user(user_id=user.pk),
        ORDERS_PER_PAGE,
        count=mine,
    )
    page = paginator.get_page(request.GET.get("page"))
    context = {"orders": page.object_list, "page": page, "claimable": claimable}
    return render(request, "orders/order_list.html", context)


@login_needed
@never_cache
def order_detail(request: HttpRequest, number: str) -> HttpResponse:
    """The order page. `?t=<token>`: a guest order's access link (orders/guest.py):
    a right token gives this browser access and comes back without it (kept out
    of the address bar and referrers); a wrong one is the unknown order's 404.
    `?paying=<gateway>`: the shopper is back from that gateway's cashier
    (orders/services/payment_return.py); kept through the token's redirect."""
    paying = request.GET.get("paying", "")[:32]
    token = request.GET.get("t")
    if token is not None:
        found = selectors.order_get_for_guest(number=number)
        if found is None or not guest.token_matches(found, token):
            raise Http404
        guest.access_grant(request.session, number)
        url = reverse("orders:order-detail", args=[number])
        return redirect(url + ("?" + urlencode({"paying": paying}) if paying else ""))
    order = shopper_order_or_404(request, number)
    check = "ignored"
    if paying and order.status == Order.Status.PENDING:
        # A network call (the gateway's query), outside any transaction.
        check = services.payment_return_check(order=order, gateway_name=paying)
        if check == "paid":
            order = shopper_order_or_404(request, number)  # paid, maybe delivered
    context = order_page_context(
        request,
        order,
        paying=paying if check == "confirming" else "",
        chosen_gateway=paying,
    )
    context["guest_access_url"] = guest.token_show_take(request.session, order)
    return render(request, "orders/order_detail.html", context)


@login_needed
@never_cache
@require_POST
def code_reveal(request: HttpRequest, number: str, code_id: int) -> HttpResponse:
    """Decrypt one code for its buyer (audited). JSON for the page's script, HTML otherwise."""
    wants_json = "application/json" in request.headers.get("Accept", "")
    order = shopper_order(request, number)
    if order is None and not request.user.is_authenticated and not wants_json:
        raise LoginNeeded
    if order is None:
        if wants_json:
            return JsonResponse(
                {"error": {"code": "not_found", "message": _("订单不存在")}}, status=404
            )
        raise Http404
    try:
        plaintext = services.order_code_reveal(
            order=order,
            code_id=code_id,
            user=shopper_actor(request, order),
            ip_address=client_ip(request),
        )
    except DomainError as exc:
        if wants_json:
            return JsonResponse(
                {"error": {"code": exc.code, "message": exc.message}}, status=400
            )
        messages.error(request, exc.message)
        return redirect("orders:order-detail", number=order.number)
    if wants_json:
        return JsonResponse({"code": plaintext})
    context = order_page_context(request, order)
    context["revealed"] = {code_id: plaintext}
    return render(request, "orders/order_detail.html", context)
