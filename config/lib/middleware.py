"""Kaquan's own per-request steps, run as one middleware rather than three.

Every middleware in settings.MIDDLEWARE costs each request a layer of its own:
Django's exception wrapper, MiddlewareMixin's dispatch (two `hasattr`), the
method calls (docs/PERFORMANCE.md, "Paid path, session 6").

`SiteMiddleware` stands where three adjacent ones were (after WhiteNoise, so
static files never reach it; before the session, which must not see a cookie
holding NUL) and does their work in their order:
1. the Content Security Policy (config/lib/headers.py): the nonce hook on the
   request, the header on the response;
2. NUL bytes (config/lib/nul.py): cookies holding one dropped before anything
   reads them; the path, query string and form looked at once the view is
   known (process_view, at the same place in the chain as before);
3. Cache-Control: private on every response a view did not mark public.

Django's own middlewares stay as they are: `check --deploy` looks for them in
MIDDLEWARE by name (SecurityMiddleware, CsrfViewMiddleware, XFrameOptionsMiddleware).
SiteMiddleware is synchronous, as the WSGI server calls it; under ASGI Django
adapts it (async_capable = False), as it does any function-style middleware.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase

from config.lib.headers import ContentSecurityPolicyMiddleware, cache_private
from config.lib.nul import cookies_drop_nul, nul_view_check


class SiteMiddleware(ContentSecurityPolicyMiddleware):
    """The CSP, NUL bytes and Cache-Control: private, in that order (module docstring)."""

    sync_capable = True
    async_capable = False

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        self.process_request(request)
        cookies_drop_nul(request)
        answer: Any = self.get_response(request)  # synchronous (async_capable False)
        response = self.process_response(request, answer)
        cache_private(response)
        return response

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponseBase | None:
        return nul_view_check(request, view_func)
