"""`Order.partnered`: another app keeps rows about an order.

The paid path's signals carry it (orders/signals.py) so that their receivers
skip their look-up for the plain storefront orders that are most of them.
Whoever writes such a row about an existing order marks the order in the same
transaction, before the row (Order first, as every transaction takes them).
"""

from __future__ import annotations

from config.lib.db import rows_update
from orders.models import Order


def order_partnered_mark(*, order_id: int) -> None:
    """Mark the order `partnered` (one UPDATE; none when it is already). Idempotent."""
    rows_update(Order, {"pk": order_id, "partnered": False}, partnered=True)
