"""The connection health check, only for a connection that has been idle.

With CONN_HEALTH_CHECKS, Django pings a persistent connection (`SELECT 1`)
before the first query of every request: about 0.1 ms of CPU (this process and
the PostgreSQL backend) and a round trip, per request, measured in
docs/PERFORMANCE.md "Paid path, session 6". What it buys is that a connection
PostgreSQL dropped (a restart, a failover, an idle timeout, a firewall) is
replaced before a request uses it, instead of that request failing.

A connection is lost while it waits, and the longer it waits the likelier; one
that finished a request less than CONN_HEALTH_CHECK_IDLE_SECONDS ago is very
likely alive. So a connection used that recently skips the ping; one idle for
longer (the quiet hours, the first request after a pause) is still pinged. Under
load every worker's connection is busy and no request pays for the ping.

What replaces the ping for a busy connection that was dropped all the same (the
database restarted mid-rush): the first query fails, that request answers 500
(a notify is retried by the gateway), and at the end of it Django's
`close_if_unusable_or_obsolete` (request_finished) sees the error, finds the
connection unusable and closes it; the next request opens a new one. Requests in
flight at the moment of a restart fail in any case. docs/DECISIONS.md,
"Connection health checks only after an idle spell".

Receivers run after Django's own `close_old_connections` (connected when
django.db is imported, before any app's ready()), which resets the check at
request start and closes broken or aged connections at request end.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import connections

USED_AT = "_kaquan_used_at"


def _skip_check_when_recently_used(**kwargs: Any) -> None:
    idle = settings.CONN_HEALTH_CHECK_IDLE_SECONDS
    if not idle:
        return
    now = time.monotonic()
    for wrapper in connections.all(initialized_only=True):
        conn: Any = wrapper  # health_check_* are not in django-stubs
        if (
            conn.connection is not None
            and conn.health_check_enabled
            and now - getattr(conn, USED_AT, float("-inf")) < idle
        ):
            conn.health_check_done = True


def _note_use(**kwargs: Any) -> None:
    now = time.monotonic()
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None:  # still open after close_old_connections
            setattr(conn, USED_AT, now)


def connect() -> None:
    """Install the receivers (config/apps.py, once per process)."""
    request_started.connect(_skip_check_when_recently_used, dispatch_uid=__name__)
    request_finished.connect(_note_use, dispatch_uid=__name__)
