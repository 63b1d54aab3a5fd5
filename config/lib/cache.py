"""Django's Redis cache, without building a new Redis client for every operation.

`django.core.cache.backends.redis.RedisCacheClient.get_client` constructs a
`redis.Redis` object around the shared connection pool on every cache call;
with redis-py 6 that constructor costs more than the round trip itself (it was
the largest single item in a product page's profile, docs/PERFORMANCE.md §6).
A client is a thin, thread-safe wrapper of its pool, so one per pool is kept.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class _ReusingClient(RedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)  # type: ignore[attr-defined]
        client = self._clients.get(index)
        if client is None:
            pool = self._get_connection_pool(write)  # type: ignore[attr-defined]
            client = self._clients[index] = self._client(connection_pool=pool)  # type: ignore[attr-defined]
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: Any, params: Any) -> None:
        super().__init__(server, params)
        self._class = _ReusingClient

    def validate_key(self, key: str) -> None:
        """Nothing to check: Redis takes any key.

        Django's check warns about keys memcached would refuse (over 250
        characters, spaces, control characters), one Python step per character
        of every key of every operation; Django's documentation suggests this
        override for backends that accept any key.
        """

    def counter_get(self, key: str) -> int | None:
        """`get` for a counter (`add`/`incr`: an integer stored as digits), about
        less Python work: one GET sent on a pooled connection directly (redis-py
        packs it and parses the reply), not through the client's dispatch and
        retry loop; None when missing. On any connection error (or a value that is not an integer)
        it asks again through `get`, which retries as Django's cache does."""
        client = self._cache.get_client(key)  # type: ignore[attr-defined]
        pool = client.connection_pool
        conn = pool.get_connection()
        try:
            # redis-py's own packing and reply parsing, without its dispatch and
            # retry loop around them.
            conn.send_command("GET", self.make_key(key))
            raw = conn.read_response()
        except BaseException as exc:
            # The connection's state is unknown (half a reply read): dropped.
            conn.disconnect()
            pool.release(conn)
            if not isinstance(exc, Exception):
                raise
            return _int_or_none(self.get(key))
        pool.release(conn)
        if raw is None:
            return None
        try:
            return int(raw)
        except (TypeError, ValueError):
            return _int_or_none(self.get(key))


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
