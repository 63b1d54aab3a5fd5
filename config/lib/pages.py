"""Whole pages rendered once and served to many, each with its own CSRF token.

A page that says the same thing to every visitor (an anonymous product page,
"sold out") is rendered once per key and process (the `local` cache) with a
placeholder where the CSRF token goes; every response gets the visitor's own
token (and cookie) in its place. The key must name everything the page shows
(catalog version, language, stock states...); the path and the year are added
here. Nothing of a visitor's own is rendered: no messages, and templates get
`hide_account` to leave the account links out when the caller asks.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Mapping
from html import escape as html_escape
from typing import Any

from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CSRF_ALLOWED_CHARS, CSRF_SECRET_LENGTH, get_token
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import conditional_escape

# Rendered pages live this long in a process (keys carry what they show, so they
# are never stale; this only bounds memory).
PAGE_SECONDS = 600
_TOKEN_SLOT = "kaquan-csrf-slot-5c0e2f7a9b1d4e36"  # noqa: S105 - a placeholder
_SLOT_SECRET = secrets.token_hex(8)
# What `html.escape(value, quote=True)` (Django's `escape`) replaces.
_HTML_SPECIAL = re.compile("[&<>\"']")


def render_shared(
    request: HttpRequest,
    template: str,
    context: Callable[[], dict[str, Any]],
    *,
    key: str,
    status: int = 200,
    slots: Mapping[str, str] | None = None,
    per_path: bool = True,
    renew_csrf_cookie: bool = True,
) -> HttpResponse:
    """The page under `key` for this path, rendered on a miss from `context()`.

    `slots`: values of this response only (a trade number, a URL). `context()`
    puts `value_slot(name)` where each goes; each response gets the values,
    HTML-escaped, in their place. With slots the page need not be cached per
    path (`per_path=False`) when the path only names what the slots show.
    `renew_csrf_cookie=False`: see `csrf_token`.
    """
    local = caches["local"]
    path = request.get_full_path() if per_path else ""
    full_key = (
        "page:"
        + hashlib.blake2b(
            f"{key}:{path}:{timezone.now().year}".encode(),
            digest_size=16,
        ).hexdigest()
    )
    html = local.get(full_key)
    if html is None:
        html = render_to_string(
            template,
            {**context(), "csrf_token": _TOKEN_SLOT, "messages": ()},
            request,
        )
        local.set(full_key, html, PAGE_SECONDS)
    html = html.replace(_TOKEN_SLOT, csrf_token(request, renew=renew_csrf_cookie))
    # Values last, so nothing in them is replaced again (and the value slots
    # carry a per-process secret no value can know).
    for name, value in (slots or {}).items():
        html = html.replace(
            f"kaquan-slot-{_SLOT_SECRET}-{name}",  # value_slot(name)
            # A plain str with nothing to escape is its own escape (one search
            # where `html.escape` makes five passes).
            value
            if type(value) is str and not _HTML_SPECIAL.search(value)
            else _escape(value),
        )
    return HttpResponse(html, status=status)


def _escape(value: Any) -> str:
    """`conditional_escape(value)` as a str; a plain str (the usual slot value)
    straight through `html.escape`, which is what Django's `escape` applies."""
    if type(value) is str:
        return html_escape(value)
    return str(conditional_escape(value))


def value_slot(name: str) -> str:
    """Where `render_shared` puts the slot `name`'s value (plain ASCII: escaping
    leaves it as it is)."""
    return f"kaquan-slot-{_SLOT_SECRET}-{name}"


_CHARS = CSRF_ALLOWED_CHARS
_BASE = len(_CHARS)  # a constant: `len()` in the loops was a call per character
_INDEX = {c: i for i, c in enumerate(_CHARS)}
# Random bytes below this map evenly onto the 62 characters; the rest are dropped.
_EVEN = 256 - 256 % _BASE


def csrf_token(request: HttpRequest, *, renew: bool = True) -> str:
    """Django's `get_token`, its mask drawn from one `os.urandom` call (usually).

    The same token (a fresh random mask over the visitor's secret, which
    CsrfViewMiddleware accepts); Django draws the mask one `secrets.choice` at
    a time, which was a tenth of a cached page's CPU. A visitor with no secret
    yet goes through Django's own `get_token` (which sets the new cookie).

    `renew`: as `get_token`, send the unchanged cookie again to restart its
    year. `renew=False` leaves it as the browser sent it: for an answer to a
    POST that just passed the CSRF check with it (the sold-out answer). A new,
    rotated or old-format secret is still sent: CsrfViewMiddleware marks those
    itself.
    """
    secret = request.META.get("CSRF_COOKIE")
    if secret is None or len(secret) != CSRF_SECRET_LENGTH:
        return get_token(request)
    if renew:
        request.META["CSRF_COOKIE_NEEDS_UPDATE"] = True
    mask: list[int] = []
    while len(mask) < CSRF_SECRET_LENGTH:
        mask += [b % _BASE for b in secrets.token_bytes(40) if b < _EVEN]
    del mask[CSRF_SECRET_LENGTH:]
    return "".join([_CHARS[m] for m in mask]) + "".join(
        [_CHARS[(_INDEX[c] + m) % _BASE] for c, m in zip(secret, mask, strict=True)]
    )
