"""expire_orders: cancel unpaid orders past their payment deadline and release their codes."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from orders.services import order_expire_unpaid


class Command(BaseCommand):
    help = "Cancel unpaid orders past ORDER_PAYMENT_TIMEOUT_MINUTES (also a beat task)."

    def handle(self, *args: Any, **options: Any) -> None:
        total = 0
        while True:
            cancelled = order_expire_unpaid()
            total += cancelled
            if cancelled == 0:
                break
        self.stdout.write(f"cancelled {total}")
