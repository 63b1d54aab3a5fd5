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
as Django empties its own caches of the same look-ups.
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

# Distinct (cookie, Accept-Language) pairs kept; browsers send a handful.
LANGUAGE_CACHE_SIZE = 512
LANGUAGE_SETTINGS = frozenset(
    {"LANGUAGES", "LANGUAGE_CODE", "LANGUAGE_COOKIE_NAME", "LOCALE_PATHS", "USE_I18N"}
)
_languages: dict[tuple[str | None, str], str] = {}


@receiver(setting_changed)
def _language_settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in LANGUAGE_SETTINGS:
        _languages.clear()


def _prefixed(request: HttpRequest) -> bool:
    urlconf = getattr(request, "urlconf", settings.ROOT_URLCONF)
    return bool(is_language_prefix_patterns_used(urlconf)[0])  # cached by Django


def language_from_request(request: HttpRequest) -> str:
    """translation.get_language_from_request(request), remembered per (cookie, header)."""
    key = (
        request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME),
        request.META.get("HTTP_ACCEPT_LANGUAGE", ""),
    )
    language = _languages.get(key)
    if language is None:
        language = translation.get_language_from_request(request)
        if len(_languages) >= LANGUAGE_CACHE_SIZE:
            _languages.clear()
        _languages[key] = language
    return language


class LocaleMiddleware(DjangoLocaleMiddleware):
    def process_request(self, request: HttpRequest) -> None:
        if _prefixed(request):
            request._locale_prefixed = True  # type: ignore[attr-defined]
            super().process_request(request)
            return
        translation.activate(language_from_request(request))
        request.LANGUAGE_CODE = translation.get_language()

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if getattr(request, "_locale_prefixed", False):
            return super().process_response(request, response)
        headers = response.headers
        if "Vary" in headers:
            patch_vary_headers(response, ("Accept-Language",))
        else:
            headers["Vary"] = "Accept-Language"  # what patch_vary_headers writes
        headers.setdefault("Content-Language", translation.get_language())
        return response
