"""What Django does when a request ends, without the steps that do nothing here.

Django connects three receivers to `request_finished`: `close_old_connections`
(the database), `close_caches` and `reset_urlconf`. The last two cost about 80
Python calls per request between them (asgiref `Local` lookups, mostly: one per
cache alias and two for the URL configuration; docs/PERFORMANCE.md, "Paid path,
session 8"), and neither does anything on Kaquan's requests:

- `close_caches` calls `close()` of every cache in use. Only a backend that
  overrides `BaseCache.close` (memcached's, which drops its sockets) does
  anything in it; the Redis backends keep their connection pool open across
  requests and the local-memory one has nothing to close. So Django's
  `close_caches` is called as before when a configured backend has a `close()`
  of its own, and skipped when none has (found once per CACHES setting).
- `reset_urlconf` clears the thread's URL configuration, which Django's handler
  set at the start of the request: to ROOT_URLCONF, or to `request.urlconf` when
  a middleware chose another. Left at ROOT_URLCONF it means what cleared means
  (`get_resolver(None)` is `get_resolver(ROOT_URLCONF)`; the next request sets it
  again; `override_settings(ROOT_URLCONF=...)` clears it itself), so only a
  request's own choice is cleared.

`close_old_connections` stays as Django connected it: Django's test client
disconnects that very function around its requests, and it is what closes a
connection past CONN_MAX_AGE or left unusable (tests/config/test_request_end.py).
Django's `request_started` receivers stay too (`reset_queries` is disconnected by
name by Django's query-counting contexts).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.cache import caches, close_caches
from django.core.cache.backends.base import BaseCache
from django.core.signals import request_finished, setting_changed
from django.urls import get_urlconf, set_urlconf
from django.utils.module_loading import import_string

# Whether a configured cache backend does something in close(); None: not known yet.
_closing: bool | None = None


def _closing_backends() -> bool:
    global _closing
    if _closing is None:
        _closing = any(
            import_string(conf["BACKEND"]).close is not BaseCache.close
            for conf in caches.settings.values()
        )
    return _closing


def _caches_changed(*, setting: str, **kwargs: Any) -> None:
    global _closing
    if setting == "CACHES":
        _closing = None


def request_end(**kwargs: Any) -> None:
    """Django's `close_caches` and `reset_urlconf`, where they have work to do."""
    if _closing is not False and _closing_backends():
        close_caches()
    urlconf = get_urlconf()
    if urlconf is not None and urlconf != settings.ROOT_URLCONF:
        set_urlconf(None)


def connect() -> None:
    """Put `request_end` in place of Django's two receivers (config/apps.py, once)."""
    # Imported for its side effect: connecting reset_urlconf, so that it is
    # connected now (and disconnected below), not by a later first import.
    from django.core.handlers.base import reset_urlconf

    request_finished.disconnect(close_caches)
    request_finished.disconnect(reset_urlconf)
    request_finished.connect(request_end, dispatch_uid=__name__)
    setting_changed.connect(_caches_changed, dispatch_uid=__name__)
