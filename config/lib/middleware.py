"""Kaquan's own per-request steps and Django's session, language, common, auth
and messages middlewares and the referral check, run as one layer rather than
seven.

Every middleware in settings.MIDDLEWARE costs each request a layer of its own:
Django's exception wrapper, MiddlewareMixin's dispatch (two `hasattr`), the
method calls (docs/PERFORMANCE.md, "Paid path, session 6" and "session 7").

`SiteMiddleware` stands where seven were (after WhiteNoise, so static files
never reach it) and does their work in their order:
1. the Content Security Policy (config/lib/headers.py): the nonce hook on the
   request, the header on the response;
2. cookies holding NUL dropped (config/lib/nul.py) before the session, the
   language or the device read them;
3. Django's SessionMiddleware; 4. the language (config/lib/locale.py);
5. Django's CommonMiddleware (allowed hosts, Content-Length);
6. Django's AuthenticationMiddleware; 7. the messages (config/lib/messages.py);
8. Cache-Control: private on every response a view did not mark public.
Once the view is known (process_view): NUL in the path, query string or form
(config/lib/nul.py), then `?ref=CODE` on a storefront page
(distribution/attribution.py). The referral step used to run after
CsrfViewMiddleware's; it answers GET and HEAD only, which that middleware lets
through untouched, so nothing changes by its running first.

Each inner step's exception becomes a response where its own layer's wrapper
turned it into one, so the outer steps still see that response (a bad Host
header's 400 still gets the language, the CSP and Cache-Control). The class
subclasses Django's session, auth and message middlewares so admin's checks
(admin.E408-E410, which accept subclasses) know they run; their steps are
called by class name. CsrfViewMiddleware now runs inside this layer, after the
auth and messages steps instead of before: those only put lazy objects on the
request and write their cookies, independently of the CSRF cookie.

Django's own SecurityMiddleware, CsrfViewMiddleware and XFrameOptionsMiddleware
stay as they are: `check --deploy` looks for them in MIDDLEWARE by name.
SiteMiddleware is synchronous, as the WSGI server calls it; under ASGI Django
adapts it (async_capable = False), as it does any function-style middleware.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.handlers.exception import response_for_exception
from django.http import HttpRequest, HttpResponseBase
from django.middleware.common import CommonMiddleware

from config.lib.headers import ContentSecurityPolicyMiddleware, cache_private
from config.lib.locale import LocaleMiddleware
from config.lib.messages import LazyMessageMiddleware
from config.lib.nul import cookies_drop_nul, nul_view_check
from distribution.attribution import REF_METHODS, referral_redirect


class SiteMiddleware(  # type: ignore[misc]  # the bases' signatures differ in stubs only
    ContentSecurityPolicyMiddleware,
    SessionMiddleware,
    AuthenticationMiddleware,
    LazyMessageMiddleware,
):
    """Seven middlewares' steps in their order, as one layer (module docstring)."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        super().__init__(get_response)  # SessionMiddleware's: the session engine
        self._locale = LocaleMiddleware(get_response)
        self._common = CommonMiddleware(get_response)

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        self.process_request(request)  # the CSP nonce hook
        cookies_drop_nul(request)
        # Each `except` is where that step's own layer turned an exception into
        # a response, which the steps outside it then answered with.
        response: Any
        try:
            SessionMiddleware.process_request(self, request)
            try:
                self._locale.process_request(request)
                try:
                    response = self._common.process_request(request)  # the host
                    if response is None:
                        try:
                            AuthenticationMiddleware.process_request(self, request)
                            LazyMessageMiddleware.process_request(self, request)
                            response = self.get_response(request)
                            response = LazyMessageMiddleware.process_response(
                                self, request, response
                            )
                        except Exception as exc:  # auth's and messages' layers
                            response = response_for_exception(request, exc)
                    response = self._common.process_response(request, response)
                except Exception as exc:  # Common's layer
                    response = response_for_exception(request, exc)
                response = self._locale.process_response(request, response)
            except Exception as exc:  # the language's layer
                response = response_for_exception(request, exc)
            response = SessionMiddleware.process_response(self, request, response)
        except Exception as exc:  # the session's layer
            response = response_for_exception(request, exc)
        answer: HttpResponseBase = self.process_response(request, response)  # CSP
        cache_private(answer)
        return answer

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponseBase | None:
        answer = nul_view_check(request, view_func)
        if answer is None and request.method in REF_METHODS:
            answer = referral_redirect(request)
        return answer
