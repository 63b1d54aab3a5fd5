"""config/lib/requestend.py: what Django does at the end of a request still happens.

The receiver replaces Django's `close_caches` and `reset_urlconf`; Django's
`close_old_connections` stays, and with it CONN_MAX_AGE and the closing of a
broken connection.
"""

from __future__ import annotations

import time

import pytest
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test import override_settings
from django.urls import get_urlconf, reverse

CLOSED: list[str] = []


class ClosingCache(LocMemCache):
    """A backend with a close() of its own, as memcached's has."""

    def close(self, **kwargs: object) -> None:
        CLOSED.append("closed")


def elsewhere(get_response):
    """A middleware choosing the request's URL configuration (tests/config/urls_elsewhere.py)."""

    def middleware(request: HttpRequest) -> HttpResponse:
        request.urlconf = "tests.config.urls_elsewhere"
        return get_response(request)

    return middleware


CACHES_WITH_A_CLOSING_BACKEND = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "closing": {"BACKEND": "tests.config.test_request_end.ClosingCache"},
}


def test_request_end_closes_a_cache_whose_backend_closes():
    CLOSED.clear()

    with override_settings(CACHES=CACHES_WITH_A_CLOSING_BACKEND):
        caches["closing"].set("k", 1)  # in use in this thread
        request_finished.send(sender=WSGIHandler)

        assert CLOSED == ["closed"]


def test_request_end_closes_no_cache_a_request_did_not_use():
    CLOSED.clear()

    with override_settings(CACHES=CACHES_WITH_A_CLOSING_BACKEND):
        request_finished.send(sender=WSGIHandler)

        assert CLOSED == []


@pytest.mark.django_db
def test_request_end_restores_the_root_urls_after_a_request_chose_others(
    client, settings
):
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "tests.config.test_request_end.elsewhere",
    ]

    # Only there in the other configuration; a GET: routed, refused.
    response = client.get("/shop/payments/notify/sandbox/")

    assert response.status_code == 405
    assert get_urlconf() is None
    assert reverse("orders:checkout") == "/checkout/"


@pytest.mark.django_db
def test_request_end_leaves_the_root_urls_after_an_ordinary_request(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert get_urlconf() in (None, "config.urls")
    assert reverse("orders:checkout") == "/checkout/"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("signal", [request_started, request_finished])
def test_request_signals_close_a_connection_past_its_max_age(signal):
    connection.ensure_connection()
    connection.close_at = time.monotonic() - 1  # CONN_MAX_AGE is over

    signal.send(sender=WSGIHandler, environ={})

    assert connection.connection is None


@pytest.mark.django_db(transaction=True)
def test_request_end_keeps_a_connection_within_its_max_age():
    connection.ensure_connection()
    connection.close_at = time.monotonic() + 60
    kept = connection.connection

    request_finished.send(sender=WSGIHandler)

    assert connection.connection is kept


@pytest.mark.django_db(transaction=True)
def test_request_end_closes_a_connection_that_failed_and_does_not_answer(monkeypatch):
    connection.ensure_connection()
    connection.close_at = None  # persistent
    connection.errors_occurred = True
    monkeypatch.setattr(connection, "is_usable", lambda: False)

    request_finished.send(sender=WSGIHandler)

    assert connection.connection is None
