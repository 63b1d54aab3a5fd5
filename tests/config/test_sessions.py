"""Sessions are Django's cached_db (config/lib/sessions.py): the database row is
the session, the cache a copy, and an outage of the cache must not sign anyone out
nor keep a signed-out session alive."""

from __future__ import annotations

import pytest
import redis
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

pytestmark = pytest.mark.django_db

DEAD_REDIS = {
    "BACKEND": "config.lib.cache.RedisCache",
    "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
}


def _cache_down(settings):
    settings.CACHES = {**settings.CACHES, "default": DEAD_REDIS}


def test_signed_in_pages_work_with_the_cache_down(alice_client, settings):
    assert settings.SESSION_ENGINE == "config.lib.sessions"
    _cache_down(settings)

    response = alice_client.get(reverse("orders:order-list"))

    assert response.status_code == 200
    assert "alice@example.com" in response.content.decode()


def test_a_session_read_once_comes_from_the_cache(alice_client):
    alice_client.get(reverse("orders:order-list"))  # read from the row, then cached

    with CaptureQueriesContext(connection) as ctx:
        assert alice_client.get(reverse("orders:order-list")).status_code == 200

    assert not [q for q in ctx.captured_queries if "django_session" in q["sql"]]


def test_logout_during_an_outage_fails_rather_than_half_way(alice_client, settings):
    alice_client.get("/")
    _cache_down(settings)

    with pytest.raises(redis.exceptions.ConnectionError):
        alice_client.post(reverse("account_logout"))

    assert Session.objects.count() == 1  # still signed in, everywhere alike


def test_logout_removes_the_cached_copy_too(alice_client, client):
    alice_client.get("/")
    alice_client.post(reverse("account_logout"))

    assert not Session.objects.exists()
    response = alice_client.get(reverse("orders:order-list"))
    assert response.status_code == 302  # to the login page
