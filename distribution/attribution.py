"""Who brought a shopper: the referral cookie, binding at signup, crediting an order.

1. A storefront page opened with `?ref=CODE` (the home page, a product's share
   link, a sub-store, the signup page) answers a redirect to the same page
   without `ref`, carrying a signed cookie with the code for
   RESELLER_ATTRIBUTION_DAYS, when the code is an approved reseller's. An
   unknown, malformed or suspended code sets nothing and leaves an earlier
   cookie alone; a valid one replaces it (the last link clicked wins).
   The redirect keeps `ref` out of the page caches' keys: the page the visitor
   lands on is the shared one (config/lib/pages.py), and the cookie is a header
   of their own response only, never part of the cached HTML.
2. A shopper who signs up with the cookie is bound to that reseller
   (`customer_bind`); one who later becomes a reseller is put under them when
   approved (`reseller_approve`).
3. After checkout places an order, `checkout_attribute` credits it: the
   sub-store it was bought in, else the cookie's reseller, else the one the
   buyer is bound to (`order_attribute`; never the buyer's own account).
   Whether the buyer is bound is remembered in the session at login, so a
   checkout by nobody's customer asks the database nothing more.

The cookie's signature carries its time: an expired cookie a browser still
sends is ignored here too.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponseBase, HttpResponseRedirect
from django.utils.cache import patch_cache_control

from accounts.models import User
from distribution.models import CustomerBinding, Reseller
from distribution.services import customer_bind, order_attribute
from orders.models import Order

logger = logging.getLogger(__name__)

REF_PARAM = "ref"
COOKIE_NAME = "kq_ref"
COOKIE_SALT = "distribution.ref"
SESSION_BOUND = "distribution_bound"
DAY_SECONDS = 24 * 3600
# Referral codes are short upper-case letters and digits (Reseller.referral_code).
_CODE_PATTERN = re.compile(r"[A-Za-z0-9]{4,16}")
# Pages a referral link may point at: the storefront (with sub-stores) and signup.
REF_NAMESPACES = frozenset({"storefront"})
REF_URL_NAMES = frozenset({"account_signup", "account_login"})
REF_METHODS = ("GET", "HEAD")


def attribution_seconds() -> int:
    return int(settings.RESELLER_ATTRIBUTION_DAYS) * DAY_SECONDS


def referral_code_clean(value: str) -> str:
    """The code as stored (upper case), or "" when it cannot be one."""
    value = value.strip()
    return value.upper() if _CODE_PATTERN.fullmatch(value) else ""


def referral_code_from_cookie(request: HttpRequest) -> str:
    """The code in the visitor's referral cookie; "" when missing, tampered or expired."""
    value = request.get_signed_cookie(
        COOKIE_NAME, default="", salt=COOKIE_SALT, max_age=attribution_seconds()
    )
    return referral_code_clean(value or "")


def _may_hold_ref(query_string: str) -> bool:
    """Whether the raw query string could hold `ref` (no QueryDict built for most pages).

    A name is percent-decoded ("r%65f" is "ref") and "+" decodes to a space, so
    only a query string with neither "ref" nor "%" in it is certainly without it.
    """
    return bool(query_string) and (REF_PARAM in query_string or "%" in query_string)


def _approved(code: str) -> bool:
    return Reseller.objects.filter(
        referral_code=code, status=Reseller.Status.APPROVED
    ).exists()


def referral_redirect(request: HttpRequest) -> HttpResponseBase | None:
    """`?ref=CODE` on a storefront page: the clean URL, with the cookie when the code is good.

    A process_view step, once the view is known (config/lib/middleware.py).
    """
    if request.method not in REF_METHODS or not _may_hold_ref(
        request.META.get("QUERY_STRING", "")
    ):
        return None
    if REF_PARAM not in request.GET:
        return None
    match = request.resolver_match
    if match is None or not (
        REF_NAMESPACES & set(match.namespaces) or match.url_name in REF_URL_NAMES
    ):
        return None
    query = request.GET.copy()
    code = referral_code_clean(query.pop(REF_PARAM, [""])[-1])
    target = request.path + (f"?{query.urlencode()}" if query else "")
    response = HttpResponseRedirect(target)
    if code and _approved(code):
        response.set_signed_cookie(
            COOKIE_NAME,
            code,
            salt=COOKIE_SALT,
            max_age=attribution_seconds(),
            secure=settings.SESSION_COOKIE_SECURE,
            httponly=True,
            samesite="Lax",
        )
    patch_cache_control(response, private=True)
    return response


def on_user_signed_up(
    sender: object, *, request: HttpRequest, user: User, **kwargs: Any
) -> None:
    """Bind a new account to the reseller whose link brought it (allauth signal)."""
    code = referral_code_from_cookie(request) if request is not None else ""
    if not code:
        return
    try:
        with transaction.atomic():
            binding = customer_bind(user=user, referral_code=code)
    except Exception:
        # Signing up must not fail for this; the account is simply not bound.
        logger.exception("could not bind user %s to a reseller", user.pk)
        return
    if binding is not None and request is not None and hasattr(request, "session"):
        request.session[SESSION_BOUND] = True


def on_user_logged_in(
    sender: object, *, request: HttpRequest | None, user: User, **kwargs: Any
) -> None:
    """Remember in the session whether the shopper is bound (one query per login)."""
    if request is None or not hasattr(request, "session"):
        return
    if CustomerBinding.objects.filter(user_id=user.pk).exists():
        request.session[SESSION_BOUND] = True
    else:
        request.session.pop(SESSION_BOUND, None)


def checkout_attribute(
    request: HttpRequest, *, order: Order, substore_slug: str = ""
) -> None:
    """Credit a just-placed order to the reseller who brought it, if anyone did.

    Asks the database nothing when there is no sub-store, no referral cookie
    and the shopper is bound to nobody (the usual checkout). A failure is
    logged: the order stands, uncredited.
    Idempotent: the first attribution of an order stays (a double click).
    """
    code = referral_code_from_cookie(request)
    bound = (
        bool(request.session.get(SESSION_BOUND))
        if hasattr(request, "session")
        else False
    )
    if not (substore_slug or code or bound):
        return
    try:
        with transaction.atomic():
            order_attribute(
                order=order, referral_code=code, substore_slug=substore_slug
            )
    except Exception:
        logger.exception("could not attribute order %s", order.number)
