"""Django's cached_db sessions, kept working while the cache is down.

Django 5.2's `cached_db.SessionStore` already survives a failed cache read and a
failed write on save, but not the cache write that follows a read from the
database (a signed-in page would answer 500 during a Redis outage), nor the
cache lookup that checks a new session key is free (every login, sign-up
included, would answer 500). Here that write is logged and skipped and the key
is checked in the table alone: the database row is the session, the cache a copy.

A logout deletes the cached copy *before* the row and lets a cache error
through: a session must never survive in the cache after its row is gone (it
would be valid again once the cache is back), so logging out fails visibly
during an outage rather than half-way.

A login is different: it moves the session to a new key (`cycle_key`) and then
deletes the old one. The old key holds what the visitor had before signing in
(or the same user's session, when they sign in again), so a cached copy that
outlives the outage grants nothing new. There the row is deleted and the cache
error logged, and signing in works during an outage.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.sessions.backends.cached_db import SessionStore as CachedDbStore
from django.contrib.sessions.backends.db import SessionStore as DbStore
from django.core.cache import BaseCache, cache, caches
from django.http import HttpRequest
from django.utils.functional import cached_property
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

# The backend paths sessions may hold from before accounts/backends.py, and what
# they now are (the same classes but for reading the user's row).
RENAMED = {
    "django.contrib.auth.backends.ModelBackend": "accounts.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend": (
        "accounts.backends.AuthenticationBackend"
    ),
}


def _backend_renamed(data: dict[str, Any]) -> dict[str, Any]:
    """A session signed in before accounts/backends.py names Django's or allauth's
    backend, which is no longer in AUTHENTICATION_BACKENDS: read it as ours (the
    same authentication, the user row read in plain SQL), so a deploy signs no one out."""
    renamed = RENAMED.get(data.get(BACKEND_SESSION_KEY, ""))
    if renamed is not None:
        data[BACKEND_SESSION_KEY] = renamed
    return data


def get_many_with_session(request: HttpRequest, keys: list[str]) -> dict[str, Any]:
    """`cache.get_many(keys)`, the request's session copy read in the same round trip.

    For a request that needs both (the sold-out answer reads the catalog
    version): the session then uses the copy it was given, exactly as if it had
    read it itself, and asks the cache nothing more. A session already loaded,
    without a key, or kept elsewhere is left alone (it loads as usual). Raises
    what the cache raises; nothing is primed then.
    """
    session: Any = getattr(request, "session", None)
    own = (
        isinstance(session, SessionStore)
        and settings.SESSION_CACHE_ALIAS == "default"
        and session.session_key
        and not hasattr(session, "_session_cache")
    )
    session_key = session.cache_key if own else None
    found = cache.get_many([*keys, session_key] if session_key else keys)
    if session_key:
        data = found.pop(session_key, None)
        if data is not None:  # else load() reads the table, as on any cache miss
            session._session_cache = _backend_renamed(data)
    return found


class SessionStore(CachedDbStore):
    def __init__(self, session_key: str | None = None) -> None:
        # SessionBase.__init__'s assignments, without its two look-ups: the cache
        # and the serializer are found on first use (below). Every request builds
        # a store; many never load or save it (a gateway's notify has no session
        # at all), and the look-ups cost ~15 Python calls per request.
        self._session_key = session_key  # the property: an invalid key is None
        self.accessed = False
        self.modified = False

    @cached_property
    def _cache(self) -> BaseCache:
        return caches[settings.SESSION_CACHE_ALIAS]

    @cached_property
    def serializer(self) -> Any:
        return import_string(settings.SESSION_SERIALIZER)

    def load(self) -> dict[str, Any]:
        base: Any = self  # Django's private helpers, not in the type stubs
        try:
            data = base._cache.get(self.cache_key)
        except Exception:
            data = None
        if data is not None:
            return _backend_renamed(data)
        row = base._get_session_from_db()
        if not row:
            return {}
        data = _backend_renamed(self.decode(row.session_data))
        try:
            base._cache.set(
                self.cache_key, data, self.get_expiry_age(expiry=row.expire_date)
            )
        except Exception:
            logger.warning("session not copied to the cache: cache unreachable")
        return data

    def exists(self, session_key: str) -> bool:
        """Whether a new random key is taken: the table answers when the cache cannot."""
        base: Any = self
        try:
            if (self.cache_key_prefix + session_key) in base._cache:
                return True
        except Exception:
            logger.warning(
                "session key checked in the database only: cache unreachable"
            )
        return DbStore.exists(self, session_key)

    def cycle_key(self) -> None:
        base: Any = self
        data, old_key = base._session, self.session_key
        self.create()
        base._session_cache = data
        if not old_key:
            return
        try:
            self.delete(old_key)
        except Exception:
            logger.warning("old session key not dropped from the cache: unreachable")
            DbStore.delete(self, old_key)

    def delete(self, session_key: str | None = None) -> None:
        if session_key is None:
            if self.session_key is None:
                return
            session_key = self.session_key
        base: Any = self
        base._cache.delete(self.cache_key_prefix + session_key)
        DbStore.delete(self, session_key)
