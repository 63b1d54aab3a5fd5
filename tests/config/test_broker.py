"""The Celery broker on Redis: kombu's transport with one kept redis-py client per
channel (config/lib/broker.py), where kombu made a new client per message."""

from __future__ import annotations

import secrets

import pytest
from kombu import Connection

from config.celery import app as celery_app
from config.lib import broker


@pytest.fixture
def queue(settings):
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    with Connection(
        settings.CELERY_BROKER_URL, transport="config.lib.broker:Transport"
    ) as conn:
        q = conn.SimpleQueue(f"kaquan-test-broker-{secrets.token_hex(4)}")
        yield q
        q.clear()
        q.close()


def test_the_celery_app_publishes_through_the_kept_client_transport():
    with celery_app.connection_for_write() as conn:
        assert isinstance(conn.transport, broker.Transport)


def test_messages_published_in_turn_all_arrive_through_one_client(queue, monkeypatch):
    made = []
    create = broker.Channel._create_client

    def counted(self, *args, **kwargs):
        made.append(1)
        return create(self, *args, **kwargs)

    monkeypatch.setattr(broker.Channel, "_create_client", counted)

    for n in range(5):
        queue.put({"n": n})
    received = []
    for _ in range(5):
        message = queue.get(timeout=2)
        received.append(message.payload["n"])
        message.ack()

    assert received == [0, 1, 2, 3, 4]
    assert len(made) <= 1  # kombu's own channel made one per message


def test_a_new_pool_gets_a_new_client(queue):
    channel = queue.channel
    queue.put({"n": 1})
    first = channel._kept_client
    channel._disconnect_pools()  # what kombu does after a fork

    queue.put({"n": 2})

    assert channel._kept_client is not None
    assert channel._kept_client is not first
    assert channel._kept_client.connection_pool is channel.pool
    assert queue.qsize() == 2
