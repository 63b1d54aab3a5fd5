"""The connection health check, only for a connection that has been idle.

With CONN_HEALTH_CHECKS, Django pings a persistent connection (`SELECT 1`)
before the first query of every request: about 0.1 ms of CPU (this process and
the PostgreSQL backend) and a round trip, per request, measured in
docs/PERFORMANCE.md "Paid path, session 6". What it buys is that a connection
PostgreSQL dropped (a restart, a failover, an idle timeout, a firewall) is
replaced before a request uses it, instead of that request failing.

A connection is lost while it waits, and the longer it waits the likelier; one
that served a request moments ago is very likely alive. So a connection whose
previous request started less than CONN_HEALTH_CHECK_IDLE_SECONDS ago skips the
ping; one idle for longer (the quiet hours, the first request after a pause) is
still pinged. Under load every worker's connection is busy and no request pays
for the ping.

What replaces the ping for a busy connection that was dropped all the same (the
database restarted mid-rush): the first query fails, that request answers 500
(a notify is retried by the gateway), and at the end of it Django's
`close_if_unusable_or_obsolete` (request_finished) sees the error, finds the
connection unusable and closes it; the next request opens a new one. Requests in
flight at the moment of a restart fail in any case. docs/DECISIONS.md,
"Connection health checks only after an idle spell".

The receiver runs at request_started, after Django's own `close_old_connections`
(connected when django.db is imported, before any app's ready()), which resets
the check and closes broken or aged connections. It measures the idle spell from
the start of the connection's previous request (a long request only makes the
next one likelier to be pinged) and looks at the default database only, the one
Kaquan has: that costs ~12 Python calls, where following every connection
through `connections.all()` and noting each request's end would cost ~45, twice
the ping's own ~21.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.signals import request_started
from django.db import DEFAULT_DB_ALIAS, connections

STARTED_AT = "_kaquan_request_started_at"


def _skip_check_when_recently_used(**kwargs: Any) -> None:
    idle = settings.CONN_HEALTH_CHECK_IDLE_SECONDS
    conn: Any = connections[DEFAULT_DB_ALIAS]  # health_check_* not in django-stubs
    if not idle or conn.connection is None:
        return  # Django's check as is; a new connection needs none
    now = time.monotonic()
    if conn.health_check_enabled and now - getattr(conn, STARTED_AT, -idle) < idle:
        conn.health_check_done = True
    setattr(conn, STARTED_AT, now)


def connect() -> None:
    """Install the receiver (config/apps.py, once per process)."""
    request_started.connect(_skip_check_when_recently_used, dispatch_uid=__name__)
