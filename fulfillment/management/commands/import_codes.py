"""import_codes --sku SKU --file PATH [--batch-note TEXT] [--cost DECIMAL] [--expires YYYY-MM-DD] [--workers N]"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog.models import Sku
from config.lib.errors import DomainError
from fulfillment.services import card_codes_import, code_expiry_for_date


def _decimal(raw: str) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise CommandError(
            f"--cost must be a decimal amount like 12.50, got {raw!r}"
        ) from None
    if not value.is_finite() or value < 0:
        raise CommandError("--cost must be zero or more")
    return value.quantize(Decimal("0.01"))


def _expiry(raw: str) -> dt.datetime:
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:
        raise CommandError(f"--expires must be YYYY-MM-DD, got {raw!r}") from None
    return code_expiry_for_date(day)


class Command(BaseCommand):
    help = "Import card codes (TXT one per line, CSV/XLSX with a `code` column) into a new batch."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sku", required=True, help="SKU code, e.g. TX-VIP-MONTH")
        parser.add_argument(
            "--file", required=True, help="path to a .txt, .csv or .xlsx file"
        )
        parser.add_argument("--batch-note", default="", help="note stored on the batch")
        parser.add_argument(
            "--cost", default=None, help="cost price per code, e.g. 12.50"
        )
        parser.add_argument(
            "--expires", default=None, help="last day the codes are valid"
        )
        parser.add_argument("--source", default="", help="where the codes came from")
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="processes that encrypt the codes (default: one per CPU; 0: none)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        sku = Sku.objects.filter(code=options["sku"]).first()
        if sku is None:
            raise CommandError(f"unknown SKU {options['sku']!r}")
        if options["workers"] is not None and options["workers"] < 0:
            raise CommandError("--workers must be 0 (encrypt in this process) or more")
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"no such file: {path}")
        try:
            result = card_codes_import(
                sku=sku,
                content=path.read_bytes(),
                file_name=path.name,
                actor=None,
                source=options["source"] or f"import_codes {path.name}",
                cost_price=_decimal(options["cost"])
                if options["cost"] is not None
                else None,
                expires_at=_expiry(options["expires"]) if options["expires"] else None,
                note=options["batch_note"],
                workers=options["workers"],
            )
        except DomainError as exc:
            raise CommandError(
                f"{path.name}: {exc.message} — nothing was imported"
            ) from None
        for rejected in result.rejected_lines[:50]:
            self.stderr.write(f"line {rejected.line}: rejected: {rejected.reason}")
        self.stdout.write(
            f"imported {result.imported}, duplicates {result.duplicates}, rejected {result.rejected}"
        )
