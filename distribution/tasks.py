"""Distribution's Celery tasks: thin wrappers around one service each."""

from __future__ import annotations

from celery import shared_task

from distribution import webhooks
from distribution.hooks import commissions_catch_up
from distribution.partners.keys import api_nonces_purge
from distribution.services import commission_settle


@shared_task
def commission_settle_task() -> int:
    """Periodic: pending commission past the settlement window becomes available."""
    return commission_settle()


@shared_task
def commissions_catch_up_task() -> int:
    """Periodic: write the commission a failed ledger hook left out (idempotent)."""
    return commissions_catch_up()


# Retries sooner than this go back on the queue with a countdown; later ones are
# left to the minute sweep (a long countdown would outlive the broker's
# visibility timeout and be delivered twice).
WEBHOOK_COUNTDOWN_MAX = 300


@shared_task
def webhook_deliver_task(*, delivery_id: int) -> bool:
    """Send one partner webhook; a failure schedules its next attempt."""
    attempted = webhooks.webhook_deliver(delivery_id=delivery_id)
    if attempted.retry_in is not None and attempted.retry_in <= WEBHOOK_COUNTDOWN_MAX:
        webhooks.webhook_retry_later(
            delivery_id=delivery_id, countdown=attempted.retry_in
        )
    return attempted.delivered


@shared_task
def webhook_sweep_task() -> int:
    """Periodic: queue webhook deliveries that are due."""
    return webhooks.webhook_sweep()


@shared_task
def api_nonces_purge_task() -> int:
    """Periodic: forget API nonces older than any request could carry."""
    return api_nonces_purge()
