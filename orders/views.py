"""Checkout, "pay now" on a pending order, and gateway notifies."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import logging
import re
import secrets
from decimal import Decimal
from functools import partial
from typing import Any, cast

import httpx
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import SESSION_KEY
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import User
from catalog import cache as catalog_cache
from catalog.models import Sku
from config.lib.clientip import client_ip
from config.lib.errors import DomainError
from config.lib.formbody import form_fields
from config.lib.pages import render_shared
from config.lib.sessions import get_many_with_session
from config.lib.urls import PLAIN, reverse_args
from distribution import attribution as reseller_attribution
from distribution.substore import (
    ERR_SUBSTORE_GONE,
    SubstoreError,
    substore_get,
    substore_prices,
    substore_unit_price,
)
from fulfillment.availability import SkuOffer
from fulfillment.services import OutOfStockError
from orders import guest, selectors, services
from orders.access import (
    login_needed,
    order_page_context,
    shopper_order_or_404,
)
from orders.forms import CheckoutForm, PayForm
from orders.gateways import ClientKind, HeadersOnRequest, gateway_default, gateway_get
from orders.guest import guest_key
from orders.models import Order
from orders.pricing import QuoteError, bundle_items_for, order_quote
from orders.selectors import offer_get
from orders.services.checkout import ERR_SOLD_OUT
from risk import checkout as risk_checkout
from risk.device import request_device_id
from risk.types import Action

logger = logging.getLogger(__name__)


def _client_ip(request: HttpRequest) -> str | None:
    return client_ip(request)


@require_http_methods(["GET", "POST"])
def checkout(request: HttpRequest) -> HttpResponse:
    """GET: the confirmation page. POST: place the order and go to the gateway.

    A POST for a SKU known to be sold out is answered first, before the shopper's
    account is even loaded: in a flash sale that is most POSTs, and the answer is
    the same for everyone (fulfillment/soldout.py). The CSRF check has run.
    """
    if request.method != "POST":
        return _checkout(request)
    # The catalog version and the session in one cache round trip; the whole
    # request then uses that version (one request, one catalog: no second read).
    with catalog_cache.catalog_version_pinned(_catalog_version_read(request)):
        # The SKU read once: for the sold-out answer, the engine and the order;
        # the time too (the sale window, the engine's windows, the deadline).
        now = timezone.now()
        sku = catalog_cache.sku_on_sale(code=request.POST.get("sku", ""), now=now)
        # The session only to find this click's own order; a guest's by
        # the email typed (orders/services/checkout.py guest_key).
        user_id = request.session.get(SESSION_KEY)
        email = request.POST.get("email", "")
        if sku is not None and services.checkout_known_sold_out(
            sku=sku,
            user_id=user_id or (guest_key(email) if email.strip() else None),
            client_token=request.POST.get("token", ""),
        ):
            return _sold_out(request, sku)
        return _checkout(request, on_sale=sku, now=now)


def _catalog_version_read(request: HttpRequest) -> str | None:
    """The catalog version, read with the session's cached copy (config/lib/sessions.py);
    None when the cache has none or cannot answer (the usual reads then follow)."""
    try:
        found = get_many_with_session(request, [catalog_cache.VERSION_KEY])
    except Exception:
        return None  # they meet the outage again, and log it
    version = found.get(catalog_cache.VERSION_KEY)
    return str(version) if version else None


def _checkout(
    request: HttpRequest, *, on_sale: Sku | None = None, now: dt.datetime | None = None
) -> HttpResponse:
    """A bad input comes back on the confirmation page with the error at its field;
    nothing is created. The risk engine decides before anything is placed
    (risk/checkout.py): a block or a captcha to solve shows the page again (403).

    A shopper not logged in buys as a guest (orders/guest.py): an email and a
    lookup password on the same page; a `login` rule asks them to log in first.

    `on_sale`: a POST's SKU as checkout() read it on sale (None: not on sale),
    at `now` (None: the time is read where it is needed).
    """
    data = request.POST if request.method == "POST" else request.GET
    refresh = request.method == "POST" and "captcha_refresh" in data
    is_guest = not request.user.is_authenticated
    # A submitted captcha answer is checked with the form (one try per image).
    form = CheckoutForm(
        data,
        captcha=request.method == "POST" and "captcha_0" in data and not refresh,
        guest=is_guest,
        guest_required=request.method == "POST" and not refresh,
    )
    sku_code = data.get("sku", "")
    if refresh and form.is_valid():  # "another image": nothing is assessed
        form.ask_captcha()
        return _checkout_confirm(request, form, sku_code, status=403)
    if request.method == "GET" or not form.is_valid():
        return _checkout_confirm(request, form, sku_code)
    # Bought in a reseller's sub-store: its price, recomputed here from the slug
    # (the form carries no price); a closed one shows the page again.
    substore = data.get("substore", "")
    try:
        unit_price = _substore_unit_price(substore, on_sale) if substore else None
    except SubstoreError as exc:
        form.add_error(None, exc.message)
        return _checkout_confirm(request, form, sku_code, status=400)
    # The SKU checkout() read, and the client's IP: for the engine and the order.
    sku = on_sale
    ip_address = _client_ip(request)
    assessment = risk_checkout.checkout_assess(
        request,
        sku=sku,
        ip=ip_address,
        quantity=form.cleaned_data["quantity"],
        recharge_account=form.cleaned_data["recharge_account"],
        captcha_solved="captcha" in form.cleaned_data,
        guest_email=form.cleaned_data.get("email", ""),
        now=now,
    )
    if assessment is not None and risk_checkout.checkout_halt(assessment):
        placed = selectors.order_get_by_token(
            user_id=request.user.pk,
            client_token=form.cleaned_data["token"],
            email=form.cleaned_data.get("email", ""),
        )
        if placed is not None:  # a double click: that order, not a new one
            return _redirect_to_payment(request, placed)
        login_url = None
        if assessment.action == Action.CAPTCHA:
            form.ask_captcha()
        elif assessment.action == Action.LOGIN:  # only ever a guest's
            form.add_error(None, ERR_LOGIN_FIRST)
            login_url = _login_url_back(sku_code, form.cleaned_data["quantity"])
        else:  # block: the same words whichever rule fired
            form.add_error(None, risk_checkout.ERR_BLOCKED)
        # Recorded as a RiskEvaluation already: no request-log line per stop.
        request.risk_blocked = True  # type: ignore[attr-defined]
        return _checkout_confirm(
            request, form, sku_code, status=403, login_url=login_url
        )
    # The happy path looks nothing up before placing: order_place reads the SKU
    # once and the reservation is the stock check.
    try:
        order = risk_checkout.checkout_place(
            assessment,
            partial(
                services.order_place,
                user=None if is_guest else cast(User, request.user),
                guest_email=form.cleaned_data.get("email", ""),
                guest_password=form.cleaned_data.get("lookup_password", ""),
                sku_code=sku_code,
                quantity=form.cleaned_data["quantity"],
                recharge_account=form.cleaned_data["recharge_account"],
                client_token=form.cleaned_data["token"],
                ip_address=ip_address,
                device_id=request_device_id(request),
                now=now,
                unit_price=unit_price,
                sku=sku,
                # checkout() has just read the sold-out flag (a POST comes here
                # only when it did not answer "sold out").
                sold_out_checked=True,
            ),
        )
    except OutOfStockError as exc:
        if exc.available == 0 and sku is not None:
            return _sold_out(request, sku)
        form.add_error(None, exc.message)  # fewer left than asked: change the quantity
        return _checkout_confirm(request, form, sku_code, status=409)
    except DomainError as exc:
        field = getattr(exc, "field", None)
        form.add_error(field if field in form.fields else None, exc.message)
        return _checkout_confirm(request, form, sku_code, status=400 if field else 409)
    # Credited to the reseller who brought the shopper (distribution/attribution.py).
    reseller_attribution.checkout_attribute(
        request, order=order, substore_slug=substore
    )
    if order.is_guest:  # this browser opens it; its link is shown once paid
        guest.access_grant(request.session, order.number)
        guest.token_show_later(request.session, order.number)
    return _redirect_to_payment(request, order, gateway=form.cleaned_data["gateway"])


def _substore_unit_price(slug: str, sku: Sku | None) -> Decimal | None:
    """The sub-store's price for the SKU; None when the SKU is not on sale
    (order_place says so). Raises: SubstoreError (unknown or closed)."""
    return substore_unit_price(slug=slug, sku=sku) if sku is not None else None


def _sold_out(request: HttpRequest, sku: Sku) -> HttpResponse:
    """Nothing left: a flash sale's usual answer (409, no order). The page is the
    same for everyone, so it is rendered once per SKU and language and names no
    account (config/lib/pages.py)."""

    def context() -> dict[str, Any]:
        return {
            "message": str(ERR_SOLD_OUT) % {"sku": sku.name},
            "product_url": reverse("storefront:product-detail", args=[sku.product.slug])
            + f"?sku={sku.code}",
            "hide_account": True,
        }

    response = render_shared(
        request,
        "orders/sold_out.html",
        context,
        key=f"sold-out:{catalog_cache.catalog_version()}:{get_language()}:{sku.code}",
        status=409,
        # This POST just passed the CSRF check with the cookie: not sent again.
        renew_csrf_cookie=False,
    )
    # No request-log line per sold-out answer: the log's filter would drop it
    # (config/lib/logs.py); marked as logged, Django does not build the record.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


ERR_LOGIN_FIRST = gettext_lazy("为保障交易安全，这笔订单需要先登录账号再购买。")


def _login_url_back(sku_code: str, quantity: int) -> str:
    """The login page, coming back to this confirmation page."""
    back = (
        reverse("orders:checkout")
        + "?"
        + urlencode({"sku": sku_code, "quantity": str(quantity)})
    )
    return reverse("account_login") + "?" + urlencode({"next": back})


def _checkout_confirm(
    request: HttpRequest,
    form: CheckoutForm,
    sku_code: str,
    *,
    status: int = 200,
    login_url: str | None = None,
) -> HttpResponse:
    """The confirmation page: what will be bought, for how much, and what is missing."""
    offer = offer_get(code=sku_code)
    if offer is None:
        messages.error(request, _("该商品当前不在售"))
        return _back_to_product(sku_code)
    if not form.is_valid():
        return _checkout_page(
            request, form, offer, status=max(status, 400), login_url=login_url
        )
    if request.method == "GET":
        quantity = form.cleaned_data["quantity"]
        try:
            order_quote(sku=offer.sku, quantity=quantity)
        except QuoteError as exc:
            if exc.field != "recharge_account":  # asked for on this very page
                form.add_error(
                    exc.field if exc.field in form.fields else None, exc.message
                )
                return _checkout_page(request, form, offer, status=400)
        if not offer.availability.covers(quantity):
            form.add_error(None, _("库存不足，请减少数量或选择其他规格"))
            status = 409
    return _checkout_page(request, form, offer, status=status)


def _back_to_product(sku_code: str) -> HttpResponse:
    # Looked up only on the error path: the happy path never needs the product.
    sku = catalog_cache.sku_on_sale(code=sku_code, now=timezone.now())
    if sku is None:
        return redirect("storefront:home")
    return redirect(
        reverse("storefront:product-detail", args=[sku.product.slug])
        + f"?sku={sku.code}"
    )


def _checkout_page(
    request: HttpRequest,
    form: CheckoutForm,
    offer: SkuOffer,
    *,
    status: int = 200,
    login_url: str | None = None,
) -> HttpResponse:
    sku = offer.sku
    quantity = form.cleaned_data.get("quantity") if form.is_bound else None
    quantity = quantity or sku.min_per_order
    items = bundle_items_for(sku) if sku.delivery == Sku.Delivery.BUNDLE else []
    account_platform = (
        sku.product.platform
        if sku.delivery == Sku.Delivery.DIRECT_TOPUP
        else next(
            (
                i.component.product.platform
                for i in items
                if i.component.delivery == Sku.Delivery.DIRECT_TOPUP
            ),
            None,
        )
    )
    substore = None
    slug = form.data.get("substore", "")
    found = substore_get(slug=slug) if slug else None
    if found is not None:  # the sub-store's price (a copy: the SKU is shared)
        substore = found[0]
        sku = copy.copy(sku)
        sku.price = substore_prices(reseller=found[1], skus=[sku])[sku.id]
        offer = dataclasses.replace(offer, sku=sku)
    elif slug and ERR_SUBSTORE_GONE not in form.non_field_errors():
        form.add_error(None, str(ERR_SUBSTORE_GONE))
    context = {
        "form": form,
        "offer": offer,
        "substore": substore,
        "quantity": quantity,
        "total": sku.price * quantity,
        "bundle_items": items,
        "account_platform": account_platform,
        "token": form.data.get("token") or secrets.token_urlsafe(16),
        "timeout": settings.ORDER_PAYMENT_TIMEOUT_MINUTES,
        # Asked for by the risk check: a new image each time (one try per image).
        "captcha": risk_checkout.captcha_challenge_new()
        if "captcha" in form.fields
        else None,
        "guest": "email" in form.fields,
        "login_url": login_url,
        "guest_login_url": reverse("account_login")
        + "?"
        + urlencode({"next": request.get_full_path()}),
    }
    return render(request, "orders/checkout.html", context, status=status)


# Phones get the gateway's mobile cashier (Alipay wap pay, WeChat H5).
PHONE_USER_AGENT = re.compile(r"Mobile|Android|iPhone|iPod|HarmonyOS|Windows Phone")


def _client_kind(request: HttpRequest) -> ClientKind:
    # META's key for request.headers["User-Agent"], without building the headers.
    agent = request.META.get("HTTP_USER_AGENT", "")
    return "phone" if PHONE_USER_AGENT.search(agent) else "desktop"


def _redirect_to_payment(
    request: HttpRequest, order: Order, *, gateway: str | None = None
) -> HttpResponse:
    """To the gateway's pay page; a gateway that refuses or is down: the order page."""
    if order.status != Order.Status.PENDING:
        return redirect("orders:order-detail", number=order.number)
    chosen = gateway_get(gateway) if gateway else gateway_default()
    if chosen is None:
        messages.error(request, _("暂无可用的支付方式，请稍后再试"))
        return redirect("orders:order-detail", number=order.number)
    # Scheme and host once: build_absolute_uri() of a reversed path (nothing in
    # it to quote again, no dot segment) is them followed by the path.
    site = request.build_absolute_uri("/")[:-1]
    notify_base = settings.PAYMENT_NOTIFY_BASE_URL or site
    notify_path, order_path = reverse_args(
        ("orders:payment-notify", chosen.name), ("orders:order-detail", order.number)
    )
    try:
        pay_url = services.payment_start(
            order=order,
            notify_url=notify_base + notify_path,
            # Back on the order page marked: it asks this gateway, in case its
            # notify is late or lost (orders/services/payment_return.py).
            return_url=site + order_path + _paying_query(chosen.name),
            gateway_name=chosen.name,
            client=_client_kind(request),
        )
    except (DomainError, httpx.HTTPError):
        logger.warning("could not start a %s payment", chosen.name, exc_info=True)
        messages.error(request, _("支付渠道暂时不可用，请稍后在订单页重新支付"))
        return redirect("orders:order-detail", number=order.number)
    return HttpResponseRedirect(pay_url)


def _paying_query(gateway: str) -> str:
    """`"?" + urlencode({"paying": gateway})`: a plain name is its own quoting."""
    if PLAIN.fullmatch(gateway):
        return "?paying=" + gateway
    return "?" + urlencode({"paying": gateway})


@login_needed
@require_POST
def order_pay(request: HttpRequest, number: str) -> HttpResponse:
    """ "Pay now" on a pending order: to the chosen gateway's page for it."""
    order = shopper_order_or_404(request, number)
    if order.status != Order.Status.PENDING:
        messages.info(request, _("该订单已不是待支付状态"))
        return redirect("orders:order-detail", number=order.number)
    # The gateway as checkout takes it (orders/forms.py): one that is unknown or
    # switched off comes back on the order page with the error at the picker.
    form = PayForm(request.POST)
    if not form.is_valid():
        context = order_page_context(request, order)
        context["pay_form"] = form
        return render(request, "orders/order_detail.html", context, status=400)
    return _redirect_to_payment(request, order, gateway=form.cleaned_data["gateway"])


# Gateways cannot send our CSRF token; the notify is authenticated by its signature.
@csrf_exempt
@require_POST
def payment_notify(request: HttpRequest, gateway: str) -> HttpResponse:
    """Record and act on a notify; answer in the gateway's own words (its ack)."""
    handler = gateway_get(gateway)
    if handler is None:
        raise Http404
    source = _client_ip(request)
    if services.notify_source_limited(source=source):
        # A source over its rejected notifies this minute. Not recorded: the
        # limit is what keeps a forger's flood out of the table. The gateway's
        # own "not taken" (it retries later), as 429.
        _status, content_type, body = handler.ack(accepted=False)
        return HttpResponse(body, status=429, content_type=content_type)
    # The form parsed by Django's rules without building request.POST
    # (config/lib/formbody.py): a gateway's form has a handful of fields.
    fields = handler.notify_fields(
        body=request.body, headers=HeadersOnRequest(request), post=form_fields(request)
    )
    try:
        result = services.payment_notify_handle(
            gateway_name=gateway, fields=fields, remote_addr=source, body=request.body
        )
    except LookupError:
        raise Http404 from None
    if not result.accepted:
        services.notify_rejection_note(source=source)
    status, content_type, body = handler.ack(accepted=result.accepted)
    return HttpResponse(body, status=status, content_type=content_type)
