"""Which device a request comes from: a signed, long-lived cookie and the user agent.

Every request gets `request.device_id`. A browser that sends a cookie we signed
keeps its id; one that sends none, or a cookie whose signature or shape is wrong
(tampered, truncated, made up), gets a fresh random id and the cookie with it in
the response. The id is therefore never chosen by the client: a bot can throw
its cookie away and start afresh (the IP and account limits still count it), but
it cannot pose as another shopper's device or pick a name a list would match.

No database and no cache: the middleware runs on every request, including the
storefront pages served from the whole-page cache (config/lib/pages.py) and the
sold-out answer that costs no SQL. Those caches hold HTML only; the cookie is a
header of each visitor's own response, so it is never shared. A response that
sets it is marked private for caches outside the app (a proxy must not hand one
visitor's Set-Cookie to the next).

A machine request (a CSRF-exempt view, such as a payment notify or a supplier
callback, called without any cookie) still gets an id but no cookie: a gateway
keeps none, so signing one (about 100 Python calls) would buy nothing.

Checking a cookie's signature costs about as much; a verified cookie's id is
remembered per process (bounded; emptied when a signing setting changes), so a
returning browser's cookie is checked once per worker. Only cookies that passed
are kept: a forged or malformed one is checked, and refused, every time.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase

from config.lib.headers import cache_private_over_public

COOKIE_NAME = "kq_device"
COOKIE_SALT = "risk.device"
COOKIE_MAX_AGE = 365 * 24 * 3600  # a year: a device is worth remembering
# secrets.token_urlsafe(16): 22 characters of the URL-safe alphabet.
_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{22}")
# Verified cookie values and their ids, per process (a few MB at most).
VERIFIED_CACHE_SIZE = 10_000
SIGNING_SETTINGS = frozenset(
    {
        "SECRET_KEY",
        "SECRET_KEY_FALLBACKS",
        "SIGNING_BACKEND",
        "SIGNED_COOKIE_LEGACY_SALT_FALLBACK",
    }
)
_verified: dict[str, str] = {}


@receiver(setting_changed)
def _signing_settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in SIGNING_SETTINGS:
        _verified.clear()


def new_device_id() -> str:
    return secrets.token_urlsafe(16)


def device_id_from_cookie(request: HttpRequest) -> str | None:
    """The id in the request's device cookie, or None when it is missing or not ours."""
    cookie = request.COOKIES.get(COOKIE_NAME)
    if cookie is None:
        return None
    known = _verified.get(cookie)
    if known is not None:
        return known
    value = request.get_signed_cookie(COOKIE_NAME, default=None, salt=COOKIE_SALT)
    if value is None or not _ID_PATTERN.fullmatch(value):
        return None
    if len(_verified) >= VERIFIED_CACHE_SIZE:
        _verified.clear()
    _verified[cookie] = value
    return value


def _is_machine_request(request: HttpRequest) -> bool:
    """A CSRF-exempt view (notify, callback, partner API) called without cookies."""
    if request.COOKIES:
        return False
    match = request.resolver_match
    return match is not None and getattr(match.func, "csrf_exempt", False) is True


def ua_hash(request: HttpRequest) -> str:
    """sha256 of the User-Agent header, first 16 hex characters ("" for none)."""
    # META's key for request.headers["User-Agent"], without building the headers.
    agent = request.META.get("HTTP_USER_AGENT", "")
    if not agent:
        return ""
    return hashlib.sha256(agent.encode("utf-8", "replace")).hexdigest()[:16]


class DeviceMiddleware:
    """Sets `request.device_id`; issues the cookie when the request had no valid one."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        device_id = device_id_from_cookie(request)
        issue = device_id is None
        if device_id is None:
            device_id = new_device_id()
        request.device_id = device_id  # type: ignore[attr-defined]
        response = self.get_response(request)
        if issue and not _is_machine_request(request):
            response.set_signed_cookie(
                COOKIE_NAME,
                device_id,
                salt=COOKIE_SALT,
                max_age=COOKIE_MAX_AGE,
                secure=settings.SESSION_COOKIE_SECURE,  # on unless DEBUG
                httponly=True,
                samesite="Lax",
            )
            cache_private_over_public(response)
        return response


def request_device_id(request: HttpRequest) -> str:
    """The request's device id ("" when the middleware did not run, e.g. a bare test request)."""
    return str(getattr(request, "device_id", ""))
