"""Operator admin for the code vault, split by what each part guards.

batches.py brings plaintext codes in (the import flow); codes.py holds the only admin
paths by which plaintext goes out (reveal and export) and their audit log. Apart, each
module's security argument can be read on its own. suppliers.py holds the supplier
and supplier-product admins (write-only signing secret, request health); topups.py
the top-up list, timeline and operator actions, and the supplier attempts;
callbacks.py the supplier callback log; skus.py the SKU list with stock
(catalog knows nothing of stock, so its SKU admin lives here). Django's admin autodiscover
imports only this package, so importing the submodules here is what runs their
@admin.register calls.
"""

from __future__ import annotations

from fulfillment.admin import (
    batches,
    callbacks,
    codes,
    restocks,
    skus,
    suppliers,
    topups,
)

__all__ = ["batches", "callbacks", "codes", "restocks", "skus", "suppliers", "topups"]
