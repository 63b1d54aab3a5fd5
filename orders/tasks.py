"""Thin Celery tasks: take ids, call one service, map errors to retries."""

from __future__ import annotations

import datetime as dt

import httpx
from celery import shared_task

from orders import services
from orders.gateways import sandbox
from orders.services import operator_alerts


@shared_task(
    autoretry_for=(Exception,), retry_backoff=True, retry_backoff_max=300, max_retries=8
)
def order_email_send_task(*, email_id: int, queued_at: str | None = None) -> bool:
    """One email (what was queued before the drain; kept for messages in flight)."""
    return services.order_email_send(
        email_id=email_id,
        queued_at=dt.datetime.fromisoformat(queued_at) if queued_at else None,
    )


@shared_task
def order_email_drain_task(*, queued_at: str | None = None) -> int:
    return services.order_email_drain(
        queued_at=dt.datetime.fromisoformat(queued_at) if queued_at else None
    )


@shared_task
def order_email_flush_task() -> int:
    return services.order_email_flush()


@shared_task
def order_expire_unpaid_task() -> int:
    return services.order_expire_unpaid()


@shared_task(autoretry_for=(httpx.HTTPError,), retry_backoff=True, max_retries=8)
def refund_submit_task(*, refund_id: int) -> bool:
    return services.refund_submit(refund_id=refund_id)


@shared_task
def refund_flush_task() -> int:
    return services.refund_flush()


@shared_task
def refund_gateway_sweep_task() -> int:
    return services.refund_gateway_sweep()


@shared_task(bind=True, max_retries=8)
def sandbox_notify_deliver_task(self, *, trade_id: int, trade_status: str) -> bool:  # type: ignore[no-untyped-def]
    """The sandbox gateway retries its notify until the shop answers `success`."""
    try:
        delivered = sandbox.sandbox_notify_deliver(
            trade_id=trade_id, trade_status=trade_status
        )
    except httpx.HTTPError as exc:
        raise self.retry(exc=exc, countdown=2**self.request.retries) from exc
    if not delivered:
        raise self.retry(countdown=2**self.request.retries)
    return True


@shared_task
def sandbox_notify_sweep_task() -> int:
    return sandbox.sandbox_notify_sweep()


@shared_task
def payment_lost_notify_sweep_task() -> int:
    return services.payment_lost_notify_sweep()


@shared_task(
    autoretry_for=(Exception,), retry_backoff=True, retry_backoff_max=300, max_retries=8
)
def operator_alert_send_task(*, email_id: int) -> bool:
    return operator_alerts.operator_alert_send(email_id=email_id)


@shared_task
def operator_alerts_check_task() -> int:
    return operator_alerts.operator_alerts_check()
