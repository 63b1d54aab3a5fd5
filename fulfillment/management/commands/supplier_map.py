"""supplier_map SKU --supplier NAME --product-id ID --cost DECIMAL [--priority N]"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.lib.errors import DomainError
from fulfillment.models import SupplierProduct
from fulfillment.services import supplier_map


def _cost(raw: str) -> Decimal:
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise CommandError(
            f"--cost must be a decimal amount like 12.50, got {raw!r}"
        ) from None
    if not value.is_finite() or value < 0:
        raise CommandError("--cost must be zero or more")
    if value != value.quantize(Decimal("0.01")):
        raise CommandError("--cost takes at most two decimal places")
    return value


class Command(BaseCommand):
    help = (
        "Map a top-up SKU (or a card SKU restocked from the supplier) to a supplier "
        "product; idempotent. Priority is ascending: a lower number is tried first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("sku", help="SKU code, e.g. TX-VIP-MONTH")
        parser.add_argument("--supplier", required=True, help="supplier name")
        parser.add_argument(
            "--product-id", required=True, help="the supplier's product id"
        )
        parser.add_argument("--cost", required=True, help="what we pay, e.g. 12.50")
        parser.add_argument(
            "--priority",
            type=int,
            default=None,
            help="lower is tried first; default 100 when creating, unchanged when updating",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        cost = _cost(options["cost"])
        existed = SupplierProduct.objects.filter(
            sku__code=options["sku"].strip(), supplier__name=options["supplier"].strip()
        ).exists()
        try:
            mapping = supplier_map(
                sku_code=options["sku"],
                supplier_name=options["supplier"],
                product_id=options["product_id"],
                cost=cost,
                priority=options["priority"],
            )
        except DomainError as exc:
            raise CommandError(f"{exc.message} — nothing was saved") from None
        self.stdout.write(
            f"{'updated' if existed else 'created'} mapping {options['sku'].strip()} -> "
            f"{options['supplier'].strip()}:{mapping.product_id} "
            f"(cost {mapping.cost}, priority {mapping.priority})"
        )
