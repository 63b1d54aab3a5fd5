"""Who may open an order page: its account, or a browser with a guest order's access.

Used by every shopper view of one order (orders/views.py, aftersales_views.py):
the order is the visitor's own, or 404 (never 403: order numbers are never
confirmed to exist); a visitor with neither an account nor access is sent to
the login page, whatever the number (what @login_required answered before
guest orders).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse

from accounts.models import User
from orders import guest, selectors
from orders.forms import PayForm
from orders.models import Order


def shopper_order(request: HttpRequest, number: str) -> Order | None:
    """The visitor's own order: their account's, or a guest order this browser
    was given access to (its link or /orders/lookup/, orders/guest.py); None
    otherwise, whether or not the order exists."""
    if request.user.is_authenticated:
        order = selectors.order_get_for_user(number=number, user_id=request.user.pk)
        if order is not None:
            return order
    if guest.access_has(request.session, number):
        return selectors.order_get_for_guest(number=number)
    return None


def shopper_order_or_404(request: HttpRequest, number: str) -> Order:
    """As `shopper_order`; not theirs: 404 (never 403: numbers are not confirmed
    to exist). Raises: LoginNeeded for a visitor with no account and no access
    (the login page, as for any order number; see `login_needed`)."""
    order = shopper_order(request, number)
    if order is None:
        if not request.user.is_authenticated:
            raise LoginNeeded
        raise Http404
    return order


class LoginNeeded(Exception):
    """A visitor with neither an account nor access: off to the login page."""


def shopper_actor(request: HttpRequest, order: Order) -> User | None:
    """Who acts on the order for the services: its account, or None for the
    buyer of a guest order (audited as a guest)."""
    user = request.user
    if user.is_authenticated and order.user_id == user.pk:
        return user
    return None


def order_page_context(
    request: HttpRequest, order: Order, *, paying: str = "", chosen_gateway: str = ""
) -> dict[str, Any]:
    """The order page's context for this visitor: selectors.order_page_context,
    "pay now"'s form on a pending order, and `guest_order` for a visitor not
    logged in (a guest order's buyer, by its link or the lookup): they have no
    order list, so their way back is the lookup, not "my orders" (a login page).
    Anyone logged in keeps "my orders": it works for them, and lists the guest
    orders of their verified emails to claim (orders/guest.py). `paying`: see
    selectors.order_page_context. `chosen_gateway`: picked in advance in "pay now"
    (the gateway the shopper came back from)."""
    context = selectors.order_page_context(order=order, paying=paying)
    context["guest_order"] = not request.user.is_authenticated
    if order.status == Order.Status.PENDING:  # "pay now", with its gateway picker
        context["pay_form"] = PayForm(chosen=chosen_gateway)
    return context


def login_needed(
    view: Callable[..., HttpResponse],
) -> Callable[..., HttpResponse]:
    """Turns LoginNeeded into the login page (what login_required answered)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except LoginNeeded:
            return redirect_to_login(request.get_full_path())

    return wrapped
