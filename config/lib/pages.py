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
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import conditional_escape

# Rendered pages live this long in a process (keys carry what they show, so they
# are never stale; this only bounds memory).
PAGE_SECONDS = 600
_TOKEN_SLOT = "kaquan-csrf-slot-5c0e2f7a9b1d4e36"  # noqa: S105 - a placeholder
_SLOT_SECRET = secrets.token_hex(8)


def render_shared(
    request: HttpRequest,
    template: str,
    context: Callable[[], dict[str, Any]],
    *,
    key: str,
    status: int = 200,
    slots: Mapping[str, str] | None = None,
    per_path: bool = True,
) -> HttpResponse:
    """The page under `key` for this path, rendered on a miss from `context()`.

    `slots`: values of this response only (a trade number, a URL). `context()`
    puts `value_slot(name)` where each goes; each response gets the values,
    HTML-escaped, in their place. With slots the page need not be cached per
    path (`per_path=False`) when the path only names what the slots show.
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
    html = html.replace(_TOKEN_SLOT, get_token(request))
    # Values last, so nothing in them is replaced again (and the value slots
    # carry a per-process secret no value can know).
    for name, value in (slots or {}).items():
        html = html.replace(value_slot(name), str(conditional_escape(value)))
    return HttpResponse(html, status=status)


def value_slot(name: str) -> str:
    """Where `render_shared` puts the slot `name`'s value (plain ASCII: escaping
    leaves it as it is)."""
    return f"kaquan-slot-{_SLOT_SECRET}-{name}"
