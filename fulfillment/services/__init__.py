"""Fulfillment services: the card-code vault (codes.py) and suppliers (suppliers.py).

This package was one module; every public name is re-exported here so callers
keep importing from `fulfillment.services`.
"""

from __future__ import annotations

from fulfillment.services.codes import (
    ERR_NOT_CARD_CODE_SKU,
    ERR_OUT_OF_STOCK,
    IMPORT_CHUNK,
    ROTATE_CHUNK,
    CodeImportError,
    ImportResult,
    OutOfStockError,
    card_code_reveal,
    card_codes_expire,
    card_codes_export,
    card_codes_import,
    card_codes_mark_sold,
    card_codes_release,
    card_codes_reserve,
    code_expiry_for_date,
    vault_rotate,
)
from fulfillment.services.suppliers import (
    SupplierConfigError,
    supplier_map,
    supplier_refresh,
    supplier_refresh_all,
    supplier_register,
    supplier_secrets_rotate,
)

__all__ = [
    "ERR_NOT_CARD_CODE_SKU",
    "ERR_OUT_OF_STOCK",
    "IMPORT_CHUNK",
    "ROTATE_CHUNK",
    "CodeImportError",
    "ImportResult",
    "OutOfStockError",
    "SupplierConfigError",
    "card_code_reveal",
    "card_codes_expire",
    "card_codes_export",
    "card_codes_import",
    "card_codes_mark_sold",
    "card_codes_release",
    "card_codes_reserve",
    "code_expiry_for_date",
    "supplier_map",
    "supplier_refresh",
    "supplier_refresh_all",
    "supplier_register",
    "supplier_secrets_rotate",
    "vault_rotate",
]
