"""supplier_register NAME --base-url URL --app-key KEY --secret SECRET [--priority N] [--disabled]"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.lib.errors import DomainError
from fulfillment.models import Supplier
from fulfillment.services import supplier_register


class Command(BaseCommand):
    help = (
        "Create or update a supplier speaking the generic protocol; idempotent by NAME. "
        "Priority is ascending: a lower number is tried first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="supplier name (letters, digits, - and _)")
        parser.add_argument("--base-url", required=True, help="e.g. https://api.x.com")
        parser.add_argument("--app-key", required=True)
        parser.add_argument("--secret", required=True, help="the signing secret")
        parser.add_argument(
            "--priority",
            type=int,
            default=None,
            help="lower is tried first; default 100 when creating, unchanged when updating",
        )
        parser.add_argument(
            "--disabled", action="store_true", help="register it switched off"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        existed = Supplier.objects.filter(name=name).exists()
        try:
            supplier = supplier_register(
                name=name,
                base_url=options["base_url"],
                app_key=options["app_key"],
                secret=options["secret"] or None,
                priority=options["priority"],
                enabled=not options["disabled"],
            )
        except DomainError as exc:
            raise CommandError(
                f"supplier {name!r}: {exc.message} — nothing was saved"
            ) from None
        # Never the secret: only what an operator needs to check the registration.
        self.stdout.write(
            f"{'updated' if existed else 'created'} supplier {supplier.name} "
            f"({supplier.base_url}, app_key {supplier.app_key}, "
            f"priority {supplier.priority}, "
            f"{'enabled' if supplier.is_enabled else 'disabled'})"
        )
