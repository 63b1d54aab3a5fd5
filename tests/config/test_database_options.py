"""Our PostgreSQL connections price random reads for SSDs and cached data."""

from __future__ import annotations

import time

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection


@pytest.mark.django_db
def test_connections_plan_with_the_ssd_random_page_cost():
    """With the server's default (4), the risk engine's database counts hash-join
    every order line once a shop has tens of thousands of orders (settings.py)."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW random_page_cost")
        (value,) = cursor.fetchone()
    assert float(value) == pytest.approx(1.1)


@pytest.fixture
def pings(monkeypatch):
    """How many health checks (`is_usable`) the connection has run.

    Django's close_old_connections is taken off the request signals, as the test
    Client does (inside the test's transaction it would close the connection);
    the tests reset `health_check_done` as it does at request start.
    """
    count = []
    real = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: count.append(1) or real())
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield count
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _request_then_query() -> None:
    connection.health_check_done = False  # close_old_connections at request start
    request_started.send(sender=None)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


@pytest.mark.django_db
def test_a_connection_used_a_moment_ago_is_not_pinged(pings):
    assert connection.health_check_enabled  # CONN_HEALTH_CHECKS, settings.py
    _request_then_query()  # the first: pinged, never used before
    request_finished.send(sender=None)
    pings.clear()

    _request_then_query()

    assert len(pings) == 0


@pytest.mark.django_db
def test_a_connection_idle_for_a_while_is_pinged_first(pings, settings):
    settings.CONN_HEALTH_CHECK_IDLE_SECONDS = 0.01
    _request_then_query()
    request_finished.send(sender=None)
    pings.clear()
    time.sleep(0.02)

    _request_then_query()

    assert len(pings) == 1


@pytest.mark.django_db
def test_without_an_idle_allowance_every_request_pings(pings, settings):
    settings.CONN_HEALTH_CHECK_IDLE_SECONDS = 0
    request_finished.send(sender=None)

    _request_then_query()

    assert len(pings) == 1
