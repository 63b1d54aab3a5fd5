"""kombu's Redis transport, publishing through one kept client per channel.

kombu's Redis channel builds a new redis-py client (`redis.Redis(connection_pool=…)`,
~520 Python calls) for every message it publishes and every queue command it sends;
only the pool's sockets are reused. That was a third of the Celery publish of the
delivery email in the payment notify (docs/PERFORMANCE.md, "Paid path, session 5").
This channel keeps one client per pool instead. A redis-py client holds no
connection of its own (each command borrows one from the pool), so sharing it is
what the new clients did; when kombu replaces the pool (after a fork, on close), a
new client is made for the new pool.

Chosen by `CELERY_BROKER_TRANSPORT` when the broker is Redis (config/settings.py);
the make-run demo's filesystem broker keeps kombu's own transport.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):  # kombu is untyped
    _kept_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        pool = self.pool
        kept = self._kept_client
        if kept is None or kept.connection_pool is not pool:
            kept = self._kept_client = self._create_client()  # type: ignore[no-untyped-call]
        yield kept

    def _disconnect_pools(self) -> None:
        self._kept_client = None
        super()._disconnect_pools()  # type: ignore[no-untyped-call]


class Transport(kombu_redis.Transport):
    Channel = Channel
