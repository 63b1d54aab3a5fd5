from __future__ import annotations

import secrets

from catalog.models import Sku
from fulfillment.models import CardCode
from fulfillment.services import ImportResult, card_codes_import


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
