from __future__ import annotations

import secrets
from decimal import Decimal
from typing import Any

from catalog.models import Sku
from fulfillment.models import CardCode, Supplier, SupplierProduct
from fulfillment.services import (
    ImportResult,
    card_codes_import,
    supplier_map,
    supplier_register,
)


def make_codes(n: int, prefix: str = "CODE") -> list[str]:
    return [f"{prefix}{secrets.token_hex(8).upper()}" for _ in range(n)]


def stock_codes(sku: Sku, codes: list[str] | int, **kwargs: object) -> ImportResult:
    """Import codes into the vault through the real service (the only way codes exist)."""
    if isinstance(codes, int):
        codes = make_codes(codes)
    return card_codes_import(
        sku=sku,
        content="\n".join(codes).encode(),
        file_name="codes.txt",
        actor=None,
        **kwargs,
    )


def available(sku: Sku) -> int:
    return CardCode.objects.filter(sku=sku, status=CardCode.Status.AVAILABLE).count()


def supplier_make(
    name: str = "sim",
    *,
    base_url: str = "http://127.0.0.1:1",
    app_key: str = "app",
    secret: str = "s3cret-signing-key",  # noqa: S107 - a test credential
    priority: int | None = None,
    enabled: bool = True,
) -> Supplier:
    """Register a supplier through the real service (so its secret is sealed)."""
    return supplier_register(
        name=name,
        base_url=base_url,
        app_key=app_key,
        secret=secret,
        priority=priority,
        enabled=enabled,
    )


def supplier_for_simulator(
    simulator: Any, name: str = "sim", **kwargs: Any
) -> Supplier:
    """A supplier pointing at a running `supplier_simulator`."""
    return supplier_make(
        name,
        base_url=simulator.base_url,
        app_key=simulator.app_key,
        secret=simulator.secret,
        **kwargs,
    )


def mapping_make(
    sku: Sku,
    supplier: Supplier,
    product_id: str = "P-TX-VIP-MONTH",
    *,
    cost: Decimal | str = "24.00",
    priority: int | None = None,
    enabled: bool | None = None,
) -> SupplierProduct:
    """Map a SKU to a supplier product through the real service."""
    return supplier_map(
        sku_code=sku.code,
        supplier_name=supplier.name,
        product_id=product_id,
        cost=Decimal(cost),
        priority=priority,
        enabled=enabled,
    )
