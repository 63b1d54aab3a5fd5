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
from collections.abc import Callable
from typing import Any

from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.utils import timezone

# Rendered pages live this long in a process (keys carry what they show, so they
# are never stale; this only bounds memory).
PAGE_SECONDS = 600
_TOKEN_SLOT = "kaquan-csrf-slot-5c0e2f7a9b1d4e36"  # noqa: S105 - a placeholder


def render_shared(
    request: HttpRequest,
    template: str,
    context: Callable[[], dict[str, Any]],
    *,
    key: str,
    status: int = 200,
) -> HttpResponse:
    """The page under `key` for this path, rendered on a miss from `context()`."""
    local = caches["local"]
    full_key = (
        "page:"
        + hashlib.blake2b(
            f"{key}:{request.get_full_path()}:{timezone.now().year}".encode(),
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
    return HttpResponse(html.replace(_TOKEN_SLOT, get_token(request)), status=status)
