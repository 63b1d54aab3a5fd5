"""The leaner middlewares (config/lib/messages.py, locale.py, cache.py) answer as
Django's do: a waiting message is neither lost nor shown twice, the language is
the visitor's, and the cache takes any key."""

from __future__ import annotations

import warnings

import pytest
from django.core.cache import cache
from django.core.cache.backends.base import CacheKeyWarning
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse

from config.lib.locale import (
    LANGUAGE_CACHE_SIZE,
    LocaleMiddleware,
    language_from_request,
)

pytestmark = pytest.mark.django_db

SIGNED_OUT = 'class="container messages"'


def test_a_waiting_message_survives_a_request_that_does_not_show_it(client, alice):
    client.force_login(alice)
    client.post(reverse("account_logout"))  # "signed out", for the next page

    assert client.get(reverse("healthz")).status_code == 200  # shows no message

    assert SIGNED_OUT in client.get("/").text
    assert SIGNED_OUT not in client.get("/").text  # shown once


def test_the_language_is_the_visitors_and_is_announced(client):
    english = client.get("/", headers={"accept-language": "en"})
    client.cookies["django_language"] = "zh-hans"
    chinese = client.get("/", headers={"accept-language": "en"})

    assert english["Content-Language"] == "en"
    assert 'lang="en"' in english.text
    assert chinese["Content-Language"] == "zh-hans"  # the cookie wins
    assert "Accept-Language" in chinese["Vary"]


def test_the_cache_takes_any_key_without_a_warning():
    key = "a key memcached would refuse: " + "x" * 300

    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheKeyWarning)
        cache.set(key, 1)

        assert cache.get(key) == 1


def test_the_language_follows_a_changed_language_setting(client, settings):
    client.cookies["django_language"] = "zh-hans"
    assert client.get("/", headers={"accept-language": "en"})["Content-Language"] == (
        "zh-hans"
    )

    settings.LANGUAGES = [("en", "English")]  # the cookie's language is gone

    assert (
        client.get("/", headers={"accept-language": "en"})["Content-Language"] == "en"
    )


def test_the_language_is_right_for_many_distinct_headers():
    factory = RequestFactory()

    for i in range(LANGUAGE_CACHE_SIZE + 50):
        english = factory.get("/", HTTP_ACCEPT_LANGUAGE=f"en-a{i:04d}")
        chinese = factory.get("/", HTTP_ACCEPT_LANGUAGE=f"zh-hans;q=0.{i % 9 + 1}")

        assert language_from_request(english) == "en"
        assert language_from_request(chinese) == "zh-hans"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "Accept-Language"),
        ("Cookie", "Cookie, Accept-Language"),
        ("accept-language", "accept-language"),
        ("*", "*"),
    ],
)
def test_vary_names_accept_language_as_djangos_middleware_writes_it(given, expected):
    answer = HttpResponse()
    if given is not None:
        answer["Vary"] = given

    response = LocaleMiddleware(lambda _request: answer)(RequestFactory().get("/"))

    assert response["Vary"] == expected
