"""Thin Celery tasks for the vault and the suppliers."""

from __future__ import annotations

from celery import shared_task

from fulfillment import services


@shared_task
def card_code_expire_task() -> int:
    return services.card_codes_expire()


@shared_task
def supplier_refresh_all_task() -> int:
    return services.supplier_refresh_all()


@shared_task(acks_late=True)
def topup_advance_task(*, topup_id: int) -> str:
    """One step of a top-up. The service schedules its own retries in next_poll_at,
    so a redelivered or duplicated message only finds the lease taken."""
    return services.topup_advance(topup_id=topup_id)


@shared_task
def topup_sweep_task() -> int:
    return services.topup_sweep()


@shared_task
def topup_reconcile_task() -> int:
    return services.topup_reconcile()


@shared_task
def card_restock_check_task() -> int:
    return services.card_restock_check()


@shared_task(acks_late=True)
def card_restock_advance_task(*, restock_id: int) -> str:
    """One step of a card restock. The service schedules its own next look in
    next_poll_at, so a redelivered or duplicated message only finds the lease taken."""
    return services.card_restock_advance(restock_id=restock_id)
