"""config/lib/cache.py `RedisCache.counter_get`: a counter read on a short path."""

from __future__ import annotations

import pytest
import redis
from django.core.cache import caches

from config.lib.cache import RedisCache


@pytest.fixture
def backend():  # type: ignore[no-untyped-def]
    cache = caches["default"]
    assert isinstance(cache, RedisCache)  # the tests run with REDIS_URL
    cache.delete_many(["count", "missing", "text"])
    return cache


def test_counter_get_reads_what_add_and_incr_wrote(backend, monkeypatch):
    backend.add("count", 0, timeout=60)
    backend.incr("count")
    backend.incr("count")

    def no_fallback(*args, **kwargs):  # the short path answers on its own
        raise AssertionError("counter_get went through get()")

    monkeypatch.setattr(backend, "get", no_fallback)

    assert backend.counter_get("count") == 2
    assert backend.counter_get("missing") is None


def test_counter_get_of_another_value_is_what_get_gives(backend):
    backend.set("text", 7.0, timeout=60)  # pickled: not digits

    assert backend.counter_get("text") == 7


def test_counter_get_asks_again_after_a_broken_reply(backend, monkeypatch):
    backend.add("count", 3, timeout=60)
    real = redis.connection.AbstractConnection.read_response
    reads = []

    def read_once_broken(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        reads.append(self)
        if len(reads) == 1:
            raise redis.ConnectionError("reset by peer")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(
        redis.connection.AbstractConnection, "read_response", read_once_broken
    )

    assert backend.counter_get("count") == 3
    assert len(reads) >= 2  # the broken reply, then `get`'s
    monkeypatch.undo()
    assert backend.counter_get("count") == 3  # the pool still works
