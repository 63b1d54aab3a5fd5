"""Queue a task without letting a broker outage fail the caller.

Work that must not be lost is written to the database first (an outbox row, a
pending refund); the task is only the fast path. When the broker is down the row
stays pending and a periodic sweep picks it up.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.exceptions import OperationalError as BrokerError

logger = logging.getLogger(__name__)

# What Celery raises when it cannot reach the broker to publish.
BROKER_ERRORS = (BrokerError, ConnectionError, OSError)


# Longest repr of a task's keyword arguments in its message (Celery's own cap).
KWARGSREPR_MAX = 1024


def enqueue_or_leave_for_sweep(
    task: Any, *, countdown: float | None = None, **kwargs: Any
) -> bool:
    """`task.delay(**kwargs)`; False (and a warning) when the broker cannot be reached.

    `countdown` (seconds; not one of the task's arguments): run it no sooner.

    The message carries `repr(kwargs)` for the worker's log, as Celery would, but
    without Celery's saferepr walk (~320 Python calls of the ~1,270 a publish costs:
    docs/PERFORMANCE.md, "Paid path, session 5"): callers pass ids and timestamps.
    """
    try:
        task.apply_async(
            kwargs=kwargs,
            countdown=countdown,
            argsrepr="()",
            kwargsrepr=repr(kwargs)[:KWARGSREPR_MAX],
        )
    except BROKER_ERRORS:
        logger.warning(
            "broker unavailable; %s %s left for the periodic sweep", task.name, kwargs
        )
        return False
    return True
