"""Operator admin for the code vault, split by what each part guards.

batches.py brings plaintext codes in (the import flow); codes.py holds the only admin
paths by which plaintext goes out (reveal and export) and their audit log. Apart, each
module's security argument can be read on its own. suppliers.py holds the supplier
and supplier-product admins (write-only signing secret). Django's admin autodiscover
imports only this package, so importing the submodules here is what runs their
@admin.register calls.
"""

from __future__ import annotations

from fulfillment.admin import batches, codes, suppliers

__all__ = ["batches", "codes", "suppliers"]
