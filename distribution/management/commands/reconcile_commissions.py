"""`python manage.py reconcile_commissions`: prove the commission ledger (exit 1 on any discrepancy)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from distribution.models import CommissionEntry, Reseller
from distribution.reconcile import commissions_reconcile


class Command(BaseCommand):
    help = (
        "Check that every reseller's commission ledger sums to the balances shown"
        " and matches payouts and refunds; list every discrepancy, exit 1 if any."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        found = commissions_reconcile()
        for discrepancy in found:
            self.stdout.write(str(discrepancy))
        if found:
            raise CommandError(f"{len(found)} discrepancies", returncode=1)
        self.stdout.write(
            self.style.SUCCESS(
                f"ok: {Reseller.objects.count()} resellers,"
                f" {CommissionEntry.objects.count()} ledger entries agree"
            )
        )
