"""A cache for counters that must keep counting while Redis is down.

allauth keeps its rate-limit counters (failed logins, sign-ups, password
resets) and the used-TOTP-code markers in a cache. Against the shared cache
alone a Redis outage made login, sign-up and password reset answer 500. This
backend sends every operation to the shared cache (`PRIMARY`, "default") and,
when that raises a connection-level error, to a process-local LocMemCache
instead, for `RETRY_SECONDS` before Redis is tried again (a dead Redis costs
one failed connection per process per interval, not one per operation).

During an outage the counters are per process: with N worker processes a
limit lets through at most N times its count. Degraded, never open: every
attempt is still counted somewhere. When Redis comes back its counters are
used again (what was counted locally meanwhile is not carried over).

Not for the catalog version or sessions: those have their own outage rules
(catalog/cache.py, config/lib/sessions.py), and a per-process copy of a value
every process must agree on would be wrong for them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache
from redis import RedisError

logger = logging.getLogger(__name__)

CACHE_ERRORS = (RedisError, OSError)
DEFAULT_RETRY_SECONDS = 5.0
DEFAULT_MAX_ENTRIES = 20000

# Per process, by primary alias and location (backends are per thread; outages are not).
_down_until: dict[str, float] = {}


class FallbackCache(BaseCache):
    """PRIMARY while it answers, a process-local LocMemCache while it does not."""

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)
        options: dict[str, Any] = params.get("OPTIONS", {})
        self.primary_alias = str(options.get("PRIMARY", "default"))
        self.retry_seconds = float(options.get("RETRY_SECONDS", DEFAULT_RETRY_SECONDS))
        max_entries = int(options.get("MAX_ENTRIES", DEFAULT_MAX_ENTRIES))
        self.fallback = LocMemCache(
            location or "kaquan-fallback",
            {"OPTIONS": {"MAX_ENTRIES": max_entries}},
        )

    def _primary_id(self) -> str:
        location = caches.settings.get(self.primary_alias, {}).get("LOCATION", "")
        return f"{self.primary_alias}:{location}"

    def _run(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        primary_id = self._primary_id()
        if time.monotonic() >= _down_until.get(primary_id, 0.0):
            try:
                return getattr(caches[self.primary_alias], operation)(*args, **kwargs)
            except CACHE_ERRORS as exc:
                _down_until[primary_id] = time.monotonic() + self.retry_seconds
                logger.warning(
                    "cache %r unreachable (%s): counting in this process for %.0fs",
                    self.primary_alias,
                    type(exc).__name__,
                    self.retry_seconds,
                )
        return getattr(self.fallback, operation)(*args, **kwargs)

    def add(
        self, key: Any, value: Any, timeout: Any = None, version: Any = None
    ) -> bool:
        return bool(self._run("add", key, value, timeout, version))

    def get(self, key: Any, default: Any = None, version: Any = None) -> Any:
        return self._run("get", key, default, version)

    def set(
        self, key: Any, value: Any, timeout: Any = None, version: Any = None
    ) -> None:
        self._run("set", key, value, timeout, version)

    def touch(self, key: Any, timeout: Any = None, version: Any = None) -> bool:
        return bool(self._run("touch", key, timeout, version))

    def delete(self, key: Any, version: Any = None) -> bool:
        return bool(self._run("delete", key, version))

    def get_many(self, keys: Any, version: Any = None) -> dict[Any, Any]:
        found: dict[Any, Any] = self._run("get_many", keys, version)
        return found

    def has_key(self, key: Any, version: Any = None) -> bool:
        return bool(self._run("has_key", key, version))

    def incr(self, key: Any, delta: int = 1, version: Any = None) -> int:
        return int(self._run("incr", key, delta, version))

    def set_many(
        self, data: dict[Any, Any], timeout: Any = None, version: Any = None
    ) -> list[Any]:
        failed: list[Any] = self._run("set_many", data, timeout, version)
        return failed

    def delete_many(self, keys: Any, version: Any = None) -> None:
        self._run("delete_many", keys, version)

    def clear(self) -> None:
        self._run("clear")
        self.fallback.clear()
