"""The one site layer (config/lib/middleware.py) answers as the eight middlewares
it replaced: an error inside it still gets the outer steps' headers, admin still
finds the session, auth and messages middlewares, and the values kept per process
(the language's code, Vary, Cache-Control, the session store's look-ups) are
what Django computes each time."""

from __future__ import annotations

import pytest
from django.contrib.admin.checks import check_dependencies
from django.contrib.sessions.backends.cached_db import SessionStore as CachedDbStore
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils import translation
from django.utils.cache import patch_cache_control, patch_vary_headers

from config.lib.headers import cache_private, cache_private_over_public
from config.lib.middleware import SiteMiddleware
from config.lib.sessions import SessionStore
from risk.device import DeviceMiddleware

pytestmark = pytest.mark.django_db

CACHE_CONTROLS = [
    "max-age=60",
    "no-cache, no-store",
    "Max-Age=0,no-store",  # rewritten as Django rewrites it
    "must-revalidate, private",
    "public, max-age=60",
    "",
]


def test_a_bad_host_is_answered_400_with_the_outer_steps_headers(client):
    response = client.get("/", HTTP_HOST="evil.example.com")

    assert response.status_code == 400
    assert response["Cache-Control"] == "private"
    assert "default-src" in response["Content-Security-Policy"]
    assert response["Vary"] == "Accept-Language"
    assert response["Content-Language"]


def test_admin_finds_the_session_auth_and_messages_middlewares():
    ids = {error.id for error in check_dependencies()}

    assert not ids & {"admin.E408", "admin.E409", "admin.E410"}


@pytest.mark.parametrize("header", ["en", "zh-hans", "fr, en;q=0.5", ""])
def test_the_requests_language_code_is_what_django_answers(header):
    seen = {}

    def view(request):
        seen["code"] = request.LANGUAGE_CODE
        seen["active"] = translation.get_language()
        return HttpResponse()

    for _ in range(2):  # resolved, then kept
        request = RequestFactory().get("/", HTTP_ACCEPT_LANGUAGE=header)
        SiteMiddleware(view)(request)

        assert seen["code"] == seen["active"]


def test_the_language_code_follows_a_changed_default_language(settings):
    def view(request):
        return HttpResponse(request.LANGUAGE_CODE)

    def code() -> str:  # a visitor without cookie or Accept-Language
        return SiteMiddleware(view)(RequestFactory().get("/")).content.decode()

    settings.LANGUAGE_CODE = "zh-hans"
    assert code() == "zh-hans"

    settings.LANGUAGE_CODE = "en"

    assert code() == "en"


@pytest.mark.parametrize("view_vary", ["Cookie", "cookie, Accept-Encoding", ""])
def test_vary_names_accept_language_exactly_as_django_writes_it(view_vary):
    def view(_request):
        response = HttpResponse()
        response["Vary"] = view_vary
        return response

    expected = HttpResponse()
    expected["Vary"] = view_vary
    patch_vary_headers(expected, ("Accept-Language",))

    for _ in range(2):  # computed, then kept
        response = SiteMiddleware(view)(RequestFactory().get("/"))

        assert response["Vary"] == expected["Vary"]


@pytest.mark.parametrize("value", CACHE_CONTROLS)
def test_cache_control_is_made_private_exactly_as_django_writes_it(value):
    expected, forced_expected = HttpResponse(), HttpResponse()
    expected["Cache-Control"] = forced_expected["Cache-Control"] = value
    if "public" not in value:
        patch_cache_control(expected, private=True)
    patch_cache_control(forced_expected, private=True)

    for _ in range(2):  # computed, then kept
        response, forced = HttpResponse(), HttpResponse()
        response["Cache-Control"] = forced["Cache-Control"] = value
        cache_private(response)
        cache_private_over_public(forced)

        assert response["Cache-Control"] == expected["Cache-Control"]
        assert forced["Cache-Control"] == forced_expected["Cache-Control"]


def test_a_public_page_that_issues_a_device_cookie_becomes_private():
    def view(_request):
        response = HttpResponse()
        response["Cache-Control"] = "public, max-age=60"
        return response

    response = DeviceMiddleware(view)(RequestFactory().get("/"))

    assert response.cookies["kq_device"].value
    assert response["Cache-Control"] == "max-age=60, private"


def test_the_session_store_holds_what_djangos_constructor_sets():
    key = "k" * 32
    ours, djangos = SessionStore(key), CachedDbStore(key)

    assert ours._cache is djangos._cache
    assert ours.serializer is djangos.serializer
    assert set(vars(ours)) == set(vars(djangos))
    assert ours.session_key == djangos.session_key == key
    assert SessionStore("short").session_key is None  # an invalid key is dropped
