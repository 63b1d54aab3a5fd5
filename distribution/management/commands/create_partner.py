"""`python manage.py create_partner EMAIL --balance DECIMAL [--tier NAME]` (SPEC §4.1)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from distribution.partners.errors import PartnerApiError
from distribution.partners.provision import partner_provision


def _decimal(raw: str) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise CommandError(f"--balance: not a number: {raw!r}") from None
    if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.01")):
        raise CommandError("--balance: a non-negative amount with at most 2 decimals")
    return value


class Command(BaseCommand):
    help = (
        "Create or update a reseller with API access and a prepaid balance; prints "
        "`key_id secret` on one line. Running it again for the same EMAIL keeps the "
        "account, sets the balance to --balance with one ledger adjustment (nothing "
        "when it is already that), applies --tier when given, and issues a NEW key "
        "(a secret is shown only once); earlier keys keep working until revoked in "
        "the admin."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--balance", required=True, help="e.g. 1000.00")
        parser.add_argument("--tier", default=None, help="a tier's name, e.g. 总代")

    def handle(self, *args: Any, **options: Any) -> None:
        balance = _decimal(options["balance"])
        email = options["email"].strip()
        if "@" not in email or len(email) > 254:
            raise CommandError(f"not an email address: {email!r}")
        try:
            made = partner_provision(
                email=email, balance=balance, tier_name=options["tier"]
            )
        except PartnerApiError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{made.key.key_id} {made.secret}")
