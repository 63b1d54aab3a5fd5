"""Risk at checkout: the shopper's signals, the engine's decision, the captcha pass.

The checkout view asks here after its form is valid and before `order_place`:

1. `checkout_assess` builds the Signals from the request (the IP the view
   read through config/lib/clientip.py, the device cookie, the user agent, the account) and
   the SKU the view read from the catalog cache, then asks
   `risk.services.risk_assess`. It reads no table: the SKU is the copy the view
   hands to `order_place` too, and the amount is the quote's total, price × quantity.
2. `block`, `captcha` and `login` (a guest asked to log in) stop the checkout there (the view renders the page
   again; `checkout_halt` drops the engine's provisional counts, since no
   order was made). `allow` and `review` go on through `checkout_place`, which
   confirms the counts with the new order's id, or drops them when
   `order_place` raised.

A device that solved the captcha is not asked again for
RISK_CAPTCHA_PASS_MINUTES: the pass lives in the cache under the device id, which
the client cannot choose (risk/device.py). A cache outage forgets passes (the
captcha is asked again), it never grants one.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Protocol

from captcha.helpers import captcha_image_url
from captcha.models import CaptchaStore
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from catalog.models import Sku
from config.lib.money import quantize
from risk.device import request_device_id, ua_hash
from risk.models import RiskEvaluation
from risk.services import risk_assess, risk_checkout_abandon, risk_checkout_confirm
from risk.types import Action, Assessment, Signals, Stage

if TYPE_CHECKING:
    from orders.models import Order

logger = logging.getLogger(__name__)

# Shown when a rule blocks the checkout. Never says which rule, nor what to change:
# an attacker would tune against it.
ERR_BLOCKED = _("抱歉，当前无法为您下单。请稍后再试，如有疑问请联系客服。")


@dataclass(frozen=True)
class CaptchaChallenge:
    """A fresh image captcha: its key (a hidden field) and its image's URLs."""

    key: str
    image_url: str
    image_url_2x: str  # for the phones' dense screens


def checkout_signals(
    request: HttpRequest,
    *,
    sku: Sku,
    quantity: int,
    recharge_account: str,
    now: dt.datetime,
    ip: str | None,
    guest_email: str = "",
) -> Signals:
    """What the engine is told about this checkout (no secrets, no queries).

    `ip`: the request's client IP (config/lib/clientip.py), as the view read it
    for the order too. A guest (not logged in): no account, and the email typed
    at checkout.
    """
    user = request.user
    return Signals(
        stage=Stage.CHECKOUT,
        now=now,
        ip=ip,
        device=request_device_id(request),
        ua_hash=ua_hash(request),
        user_id=user.pk,
        account_created_at=getattr(user, "date_joined", None),
        email=(getattr(user, "email", "") or guest_email).strip().lower(),
        recharge_account=recharge_account.strip(),
        sku_id=sku.id,
        platform_id=sku.product.platform_id,
        quantity=quantity,
        # order_quote's total, for every kind of SKU (a bundle's too).
        amount=quantize(sku.price * quantity),
    )


def checkout_assess(
    request: HttpRequest,
    *,
    sku: Sku | None,
    quantity: int,
    ip: str | None,
    recharge_account: str = "",
    captcha_solved: bool = False,
    guest_email: str = "",
    now: dt.datetime | None = None,
) -> Assessment | None:
    """The engine's decision for this checkout (recorded), or None when the SKU is
    not on sale (order_place then says so; nothing to assess).

    `sku`: the SKU as the view read it on sale (`catalog.cache.sku_on_sale`, the
    same copy it hands to `order_place`), None when it is not. `ip`: the
    request's client IP (`config.lib.clientip.client_ip`), read once by the view.

    `captcha_solved`: the shopper answered the captcha right in this request; the
    device is then let through for RISK_CAPTCHA_PASS_MINUTES.
    """
    if sku is None:
        return None
    now = now or timezone.now()
    device = request_device_id(request)
    if captcha_solved:
        captcha_pass_remember(device)
    signals = checkout_signals(
        request,
        sku=sku,
        quantity=quantity,
        recharge_account=recharge_account,
        now=now,
        ip=ip,
        guest_email=guest_email,
    )
    # The device's pass is read only when a captcha rule is active.
    passed: bool | Callable[[], bool] = captcha_solved or partial(
        captcha_pass_has, device
    )
    # Written once checkout_place knows the order (checkout_halt's stops now).
    return risk_assess(signals, captcha_passed=passed, defer=True)


def checkout_halt(assessment: Assessment) -> bool:
    """Stop the checkout here? True for block, a captcha to solve first, or a
    guest to log in first (`login`: the engine passes it over for an account).

    No order will be made then: the engine's provisional counts are dropped.
    """
    if assessment.action not in (Action.BLOCK, Action.CAPTCHA, Action.LOGIN):
        return False
    risk_checkout_abandon(assessment)
    return True


class Place(Protocol):
    """The view's order_place call, given the evaluation to write with the order."""

    def __call__(self, *, risk_evaluation: RiskEvaluation | None) -> Order: ...


def checkout_place(assessment: Assessment | None, place: Place) -> Order:
    """Run `place` (the view's order_place call) under the assessment's hold.

    The engine's provisional counts become the order's when it is made, and are
    dropped when `place` raises (sold out, a bad field...: no order exists) or
    returns the order an earlier click made with the same token (a double
    click is one order: counted once). The deferred evaluation goes to `place`:
    order_place writes it in the new order's statement when it can; otherwise
    it is written here, with the order or without one.
    """
    started = timezone.now()
    record = assessment.record if assessment is not None else None
    unwritten = (
        record if isinstance(record, RiskEvaluation) and record.pk is None else None
    )
    try:
        order = place(risk_evaluation=unwritten)
    except BaseException:
        if assessment is not None:
            risk_checkout_abandon(assessment)
        raise
    if assessment is None:
        return order
    if order.created_at < started:
        risk_checkout_abandon(assessment)
    else:
        risk_checkout_confirm(assessment, order_id=order.id)
    return order


def _pass_key(device: str) -> str:
    return f"risk:captcha-pass:{device}"


def captcha_pass_has(device: str) -> bool:
    """Whether this device solved a captcha lately (False on a cache outage)."""
    if not device:
        return False
    try:
        return bool(cache.get(_pass_key(device)))
    except Exception:
        logger.warning("captcha pass unreadable: cache unreachable")
        return False


def captcha_pass_remember(device: str) -> None:
    """Let this device through the captcha for RISK_CAPTCHA_PASS_MINUTES."""
    if not device:
        return
    try:
        cache.set(_pass_key(device), 1, settings.RISK_CAPTCHA_PASS_MINUTES * 60)
    except Exception:
        logger.warning("captcha pass not remembered: cache unreachable")


def captcha_challenge_new() -> CaptchaChallenge:
    """A new image captcha (one row in django-simple-captcha's store)."""
    key = CaptchaStore.generate_key()
    return CaptchaChallenge(
        key=key,
        image_url=captcha_image_url(key),
        image_url_2x=reverse("captcha-image-2x", args=[key]),
    )
