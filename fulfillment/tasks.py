"""Thin Celery tasks for the vault."""

from __future__ import annotations

from celery import shared_task

from fulfillment import services


@shared_task
def card_code_expire_task() -> int:
    return services.card_codes_expire()
