"""The sandbox gateway's hosted checkout page (SPEC 4.5: /pay/sandbox/<token>/).

It stands in for Alipay's cashier: the shopper clicks pay or cancel, the trade
is settled (orders/gateways/sandbox.py) and the shopper goes back to the shop.
Routed only while PAYMENT_SANDBOX_ENABLED is on (orders/urls.py).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from types import SimpleNamespace
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.cache import add_never_cache_headers
from django.utils.http import http_date
from django.utils.translation import get_language
from django.views.decorators.http import require_http_methods

from config.lib.db import row_get
from config.lib.pages import render_shared, value_slot
from orders.gateways import sandbox
from orders.models import SandboxTrade

# What `never_cache` (django.utils.cache.add_never_cache_headers) writes on a
# response that has neither header yet, written here directly: its parsing
# and merging of Cache-Control cost the page ~80 Python calls.
NEVER_CACHE = "max-age=0, no-cache, no-store, must-revalidate, private"


def _never_cache(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """`never_cache` for this page: a payment page, never stored by anyone."""

    @wraps(view)
    def never_cached(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if "Cache-Control" in response or "Expires" in response:
            add_never_cache_headers(response)  # Django merges what is there
        else:
            response.headers["Expires"] = http_date()
            response.headers["Cache-Control"] = NEVER_CACHE
        return response

    return never_cached


@_never_cache
@require_http_methods(["GET", "POST"])
def sandbox_pay(request: HttpRequest, token: str) -> HttpResponse:
    """The sandbox gateway's hosted checkout page (it stands in for Alipay's)."""
    if not sandbox.is_enabled():
        raise Http404
    trade = row_get(SandboxTrade, token=token)  # plain SQL: once per paid order
    if trade is None:
        raise Http404
    if request.method == "POST" and trade.status == SandboxTrade.Status.WAITING:
        action = request.POST.get("action")
        if action not in ("pay", "cancel"):
            return _sandbox_page(request, trade, status=400)
        sandbox.sandbox_trade_decide(trade=trade, pay=action == "pay")
        return HttpResponseRedirect(trade.return_url)
    return _sandbox_page(request, trade)


def _sandbox_page(
    request: HttpRequest, trade: SandboxTrade, *, status: int = 200
) -> HttpResponse:
    """The pay page, rendered once per language, trade state and amount; the
    trade's own values go into their slots (config/lib/pages.py)."""
    # The active language, as LocaleMiddleware kept it (config/lib/locale.py).
    language = getattr(request, "LANGUAGE_CODE", None) or get_language()
    slots = {
        "subject": trade.subject,
        "out_trade_no": trade.out_trade_no,
        "trade_no": trade.trade_no,
        "return_url": trade.return_url,
    }

    def context() -> dict[str, Any]:
        shown = {name: value_slot(name) for name in slots}
        return {
            "trade": SimpleNamespace(
                total_amount=trade.total_amount,
                status=trade.status,
                get_status_display=trade.get_status_display(),
                **shown,
            )
        }

    return render_shared(
        request,
        "orders/sandbox_pay.html",
        context,
        key=f"sandbox-pay:{language}:{trade.status}:{trade.total_amount}",
        status=status,
        slots=slots,
        per_path=False,
    )
