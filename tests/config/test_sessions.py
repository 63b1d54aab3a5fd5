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


# --- the authentication backends' paths (accounts/backends.py, session 5) ------


def _signed_in_with(backend_path, alice, client):
    """A session written as a sign-in through `backend_path` would write it."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(alice.pk)
    store[BACKEND_SESSION_KEY] = backend_path
    store[HASH_SESSION_KEY] = alice.get_session_auth_hash()
    store.create()
    client.cookies[settings.SESSION_COOKIE_NAME] = store.session_key
    return client


@pytest.mark.parametrize(
    "old_path",
    [
        "django.contrib.auth.backends.ModelBackend",
        "allauth.account.auth_backends.AuthenticationBackend",
    ],
)
@pytest.mark.parametrize("cached", [True, False], ids=["cached", "row-only"])
def test_a_session_signed_in_before_the_new_backends_stays_signed_in(
    old_path, cached, alice, client
):
    from django.core.cache import cache

    _signed_in_with(old_path, alice, client)
    if not cached:
        cache.clear()  # read from the row

    response = client.get(reverse("orders:order-list"))

    assert response.status_code == 200
    assert "alice@example.com" in response.content.decode()


def test_a_changed_password_still_signs_out_other_sessions(alice, client):
    """The user comes from plain SQL now; the session's auth hash is still checked."""
    _signed_in_with("accounts.backends.ModelBackend", alice, client)
    assert client.get(reverse("orders:order-list")).status_code == 200
    alice.set_password("a new long password 2026")
    alice.save()

    response = client.get(reverse("orders:order-list"))

    assert response.status_code == 302
    assert reverse("account_login") in response["Location"]


def test_a_deactivated_account_is_signed_out(alice, client):
    _signed_in_with("accounts.backends.AuthenticationBackend", alice, client)
    alice.is_active = False
    alice.save()

    response = client.get(reverse("orders:order-list"))

    assert response.status_code == 302
