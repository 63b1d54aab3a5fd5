"""The WeChat Native pay page: the trade's QR code, and a status the page polls.

The page keeps no table: its URL carries a signed token with the order number,
WeChat's code_url and where to go once paid. Only whoever started the payment
holds it; it shows the amount and the order's state, never anything more.
"""

from __future__ import annotations

from typing import TypedDict

import segno
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from orders.gateways import gateway_get
from orders.models import Order

PAGE_SALT = "orders.gateways.wechat.pay-page"  # signing namespace, not a secret
# A Native code_url is valid for two hours.
TOKEN_MAX_AGE_SECONDS = 2 * 60 * 60
POLL_SECONDS = 3


class PayPage(TypedDict):
    n: str  # order number
    c: str  # WeChat's code_url
    r: str  # return URL, ours


def token_make(*, number: str, code_url: str, return_url: str) -> str:
    page: PayPage = {"n": number, "c": code_url, "r": return_url}
    return signing.dumps(page, salt=PAGE_SALT, compress=True)


def _page_get(token: str) -> tuple[PayPage, Order]:
    """The page's token and order; 404 when WeChat Pay is off or the token is bad."""
    if gateway_get("wechat") is None:
        raise Http404
    try:
        page: PayPage = signing.loads(
            token, salt=PAGE_SALT, max_age=TOKEN_MAX_AGE_SECONDS
        )
    except signing.BadSignature:
        raise Http404 from None
    order = (
        Order.objects.only("number", "status", "total_amount")
        .filter(number=page["n"])
        .first()
    )
    if order is None:
        raise Http404
    return page, order


def qr_svg(data: str) -> str:
    """The QR code as inline SVG (no script, no style attribute: CSP-safe).

    role="img" with segno's <title>: screen readers announce one image.
    """
    svg = str(
        segno.make(data, error="m").svg_inline(
            scale=6,
            border=2,
            title=_("微信支付二维码"),
            svgclass="wechat-pay__qr",
            lineclass=None,
            omitsize=True,  # a viewBox: the page sizes it
        )
    )
    return svg.replace("<svg ", '<svg role="img" ', 1)


@never_cache
@require_GET
def wechat_pay(request: HttpRequest, token: str) -> HttpResponse:
    """Scan with WeChat to pay; the page follows the order until it is paid."""
    page, order = _page_get(token)
    if order.status != Order.Status.PENDING:
        return redirect(page["r"])
    context = {
        "order": order,
        # segno escapes nothing it is not given: the markup is its own.
        "qr": mark_safe(qr_svg(page["c"])),  # noqa: S308
        "status_url": reverse("orders:wechat-pay-status", args=[token]),
        "return_url": page["r"],
        "poll_seconds": POLL_SECONDS,
    }
    return render(request, "orders/wechat_pay.html", context)


@never_cache
@require_GET
def wechat_pay_status(request: HttpRequest, token: str) -> JsonResponse:
    """{"status", "done", "next"}: the page's script moves on once done."""
    page, order = _page_get(token)
    return JsonResponse(
        {
            "status": order.status,
            "done": order.status != Order.Status.PENDING,
            "next": page["r"],
        }
    )
