"""Fulfillment services: the card-code vault (codes.py, code_import.py) and suppliers.

This package was one module; every public name is re-exported here so callers
keep importing from `fulfillment.services`.
"""

from __future__ import annotations

from fulfillment.services.code_import import (
    ERR_NOT_CARD_CODE_SKU,
    IMPORT_CHUNK,
    CodeImportError,
    ImportResult,
    card_codes_add,
    card_codes_import,
)
from fulfillment.services.codes import (
    ERR_OUT_OF_STOCK,
    ROTATE_CHUNK,
    OutOfStockError,
    card_code_reveal,
    card_codes_expire,
    card_codes_export,
    card_codes_mark_sold,
    card_codes_release,
    card_codes_reserve,
    card_codes_reserve_check,
    card_codes_reserve_sql,
    card_codes_sell_sql,
    card_codes_sold_count,
    code_expiry_for_date,
    vault_rotate,
)
from fulfillment.services.restock import (
    card_restock_advance,
    card_restock_check,
    card_restock_dispatch,
)
from fulfillment.services.restock_ops import (
    CardRestockActionError,
    card_restock_close,
    card_restock_retry_now,
)
from fulfillment.services.suppliers import (
    SupplierConfigError,
    supplier_map,
    supplier_refresh,
    supplier_refresh_all,
    supplier_register,
    supplier_secrets_rotate,
)
from fulfillment.services.topup_ops import (
    CallbackResult,
    TopUpActionError,
    supplier_callback_handle,
    topup_cost,
    topup_fail_over,
    topup_refund,
    topup_retry_now,
)
from fulfillment.services.topups import (
    topup_advance,
    topup_dispatch,
    topup_reconcile,
    topup_sweep,
    topups_start_for_lines,
)

__all__ = [
    "ERR_NOT_CARD_CODE_SKU",
    "ERR_OUT_OF_STOCK",
    "IMPORT_CHUNK",
    "ROTATE_CHUNK",
    "CallbackResult",
    "CardRestockActionError",
    "CodeImportError",
    "ImportResult",
    "OutOfStockError",
    "SupplierConfigError",
    "TopUpActionError",
    "card_code_reveal",
    "card_codes_add",
    "card_codes_expire",
    "card_codes_export",
    "card_codes_import",
    "card_codes_mark_sold",
    "card_codes_release",
    "card_codes_reserve",
    "card_codes_reserve_check",
    "card_codes_reserve_sql",
    "card_codes_sell_sql",
    "card_codes_sold_count",
    "card_restock_advance",
    "card_restock_check",
    "card_restock_close",
    "card_restock_dispatch",
    "card_restock_retry_now",
    "code_expiry_for_date",
    "supplier_callback_handle",
    "supplier_map",
    "supplier_refresh",
    "supplier_refresh_all",
    "supplier_register",
    "supplier_secrets_rotate",
    "topup_advance",
    "topup_cost",
    "topup_dispatch",
    "topup_fail_over",
    "topup_reconcile",
    "topup_refund",
    "topup_retry_now",
    "topup_sweep",
    "topups_start_for_lines",
    "vault_rotate",
]
