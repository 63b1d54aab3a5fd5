"""Supplier adapters (docs: ../shared/docs/supplier-protocol.md) and their registry.

`ADAPTERS` maps `Supplier.adapter` to the class that speaks it: a plain dict, no
dynamic imports. `supplier_client` builds a client from a Supplier row, opening
its sealed secret through the vault (the only place that decrypts it).

Nothing here imports models at runtime, so the pure `protocol` module stays
importable before Django's app registry is ready (the simulator uses it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fulfillment import vault
from fulfillment.suppliers.base import Recorder, SupplierClient
from fulfillment.suppliers.generic import GenericSupplierClient

if TYPE_CHECKING:
    from fulfillment.models import Supplier

ADAPTERS: dict[str, type[GenericSupplierClient]] = {"generic": GenericSupplierClient}


class UnknownAdapterError(LookupError):
    """A Supplier row names an adapter this code base does not ship."""


def supplier_client(
    supplier: Supplier, *, record: Recorder | None = None
) -> SupplierClient:
    """A client for this supplier. Raises UnknownAdapterError, VaultError."""
    adapter = ADAPTERS.get(supplier.adapter)
    if adapter is None:
        raise UnknownAdapterError(f"supplier {supplier.name}: unknown adapter")
    secret = vault.open_secret(
        ciphertext=supplier.secret_ciphertext, key_id=supplier.secret_key_id
    )
    return adapter(
        base_url=supplier.base_url,
        app_key=supplier.app_key,
        secret=secret,
        record=record,
    )


__all__ = ["ADAPTERS", "UnknownAdapterError", "supplier_client"]
