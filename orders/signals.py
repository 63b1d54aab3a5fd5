"""Signals orders sends for apps that must not be imported by orders.

`order_status_changed` is sent after the transaction that moved an order has
committed (never for a move that was rolled back), with keyword arguments
`order_id`, `number`, `status` (the new state), `previous` and `partnered`
(the order's `Order.partnered`: False says no other app keeps rows about the
order, so a receiver looking for its own rows may skip its query; None:
unknown, look). Receivers must not fail the sender: they are called robustly
and their errors only logged. It tells, it does not steer: no order flow
depends on a receiver.

`order_lines_delivered` (keyword `lines`, the OrderLine rows just moved to
`delivered`, `now`, and `partnered` of their one order as above, None when the
sender does not know it) and `order_lines_refunded` (keyword `refunds`, pairs
of (OrderLine, amount this refund takes from it), and `now`) are sent *inside* the
transaction that made the change, with the Order row locked: what a receiver
writes commits or rolls back with it (distribution writes commissions there, so
a delivered line is never committed without its commission). They are sent with
`send`, not `send_robust`: a receiver must isolate its own failures (a
savepoint) and must never call out over the network; a database error the
sender swallowed would leave the transaction aborted anyway.
"""

from __future__ import annotations

from django.dispatch import Signal

order_status_changed = Signal()
order_lines_delivered = Signal()
order_lines_refunded = Signal()
