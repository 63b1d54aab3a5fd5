"""Fulfillment models: the code vault, suppliers, top-ups and card restocks."""

from __future__ import annotations

from fulfillment.models.restock import CardRestock
from fulfillment.models.suppliers import (
    DEFAULT_SUPPLIER_PRIORITY,
    Supplier,
    SupplierProduct,
)
from fulfillment.models.topups import (
    SupplierAttempt,
    SupplierCallback,
    TopUp,
    TopUpEvent,
)
from fulfillment.models.vault import CardCode, CodeAccessLog, CodeBatch

__all__ = [
    "DEFAULT_SUPPLIER_PRIORITY",
    "CardCode",
    "CardRestock",
    "CodeAccessLog",
    "CodeBatch",
    "Supplier",
    "SupplierAttempt",
    "SupplierCallback",
    "SupplierProduct",
    "TopUp",
    "TopUpEvent",
]
