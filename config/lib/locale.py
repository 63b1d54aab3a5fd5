"""Django's LocaleMiddleware, without looking for a language in every path.

Django's middleware matches each request's path against the language-prefix
pattern twice (once in, once out) even when the URLconf has no
`i18n_patterns`, where the answer can never be used. Kaquan's URLconf has
none: here the language comes from the cookie or Accept-Language, as with
Django's, and the response gets the same `Vary: Accept-Language` and
`Content-Language`. A URLconf with `i18n_patterns` gets Django's own code.

The language a (cookie, Accept-Language) pair resolves to depends on nothing
else but the settings and the installed catalogs, so each pair is resolved
once per process (Django's resolution is about 40 Python calls: the cookie's
code tried, the header parsed, each variant looked up). The cache is bounded
(a client can send any header) and emptied when a language setting changes,
as Django empties its own caches of the same look-ups. It keeps what
`get_language()` answers once the language is active (request.LANGUAGE_CODE),
and the Vary value a view's Vary becomes with Accept-Language added: both
depend on nothing else, and each look-up cost ~8 and ~25 Python calls.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.conf.urls.i18n import is_language_prefix_patterns_used
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase
from django.middleware.locale import LocaleMiddleware as DjangoLocaleMiddleware
from django.utils import translation
from django.utils.cache import patch_vary_headers

from config.lib.headers import header_get, header_put

# Distinct (cookie, Accept-Language) pairs kept; browsers send a handful.
LANGUAGE_CACHE_SIZE = 512
LANGUAGE_SETTINGS = frozenset(
    {"LANGUAGES", "LANGUAGE_CODE", "LANGUAGE_COOKIE_NAME", "LOCALE_PATHS", "USE_I18N"}
)
# (cookie, header) -> (the language to activate, what get_language() then answers)
_languages: dict[tuple[str | None, str], tuple[str, str]] = {}
# A response's Vary value -> that value naming Accept-Language too (what
# patch_vary_headers writes). Views set a handful of Vary values, clients none.
VARY_CACHE_SIZE = 64
_varies: dict[str, str] = {}


@receiver(setting_changed)
def _language_settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in LANGUAGE_SETTINGS:
        _languages.clear()


def _prefixed(request: HttpRequest) -> bool:
    urlconf = getattr(request, "urlconf", settings.ROOT_URLCONF)
    return bool(is_language_prefix_patterns_used(urlconf)[0])  # cached by Django


def _resolved(request: HttpRequest) -> tuple[str, str]:
    key = (
        request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME),
        request.META.get("HTTP_ACCEPT_LANGUAGE", ""),
    )
    resolved = _languages.get(key)
    if resolved is None:
        language = translation.get_language_from_request(request)
        # get_language() after activating a language depends on nothing but the
        # language and the settings (its code, or LANGUAGE_CODE without i18n).
        with translation.override(language):
            resolved = (language, translation.get_language())
        if len(_languages) >= LANGUAGE_CACHE_SIZE:
            _languages.clear()
        _languages[key] = resolved
    return resolved


def language_from_request(request: HttpRequest) -> str:
    """translation.get_language_from_request(request), remembered per (cookie, header)."""
    return _resolved(request)[0]


def _vary_with_language(response: HttpResponseBase, vary: str) -> str:
    patched = _varies.get(vary)
    if patched is None:
        patch_vary_headers(response, ("Accept-Language",))
        patched = response.headers["Vary"]
        if len(_varies) >= VARY_CACHE_SIZE:
            _varies.clear()
        _varies[vary] = patched
    return patched


class LocaleMiddleware(DjangoLocaleMiddleware):
    def process_request(self, request: HttpRequest) -> None:
        if _prefixed(request):
            request._locale_prefixed = True  # type: ignore[attr-defined]
            super().process_request(request)
            return
        language, request.LANGUAGE_CODE = _resolved(request)
        translation.activate(language)

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if getattr(request, "_locale_prefixed", False):
            return super().process_response(request, response)
        vary = header_get(response, "vary")
        # What patch_vary_headers writes: the value alone without a Vary, else
        # the value added once (the same string for the same Vary every time).
        header_put(
            response,
            "Vary",
            "vary",
            "Accept-Language" if vary is None else _vary_with_language(response, vary),
        )
        if "content-language" not in response.headers._store:
            header_put(
                response,
                "Content-Language",
                "content-language",
                translation.get_language(),
            )
        return response
