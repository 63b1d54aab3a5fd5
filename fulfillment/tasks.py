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
