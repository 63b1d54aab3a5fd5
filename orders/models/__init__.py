"""Orders, payments, refunds, the payment-notify log and the email outbox."""

from __future__ import annotations

from orders.models.emails import OrderEmail
from orders.models.orders import (
    Order,
    OrderEvent,
    OrderLine,
    new_order_number,
    new_token,
)
from orders.models.payments import (
    Payment,
    PaymentNotify,
    Refund,
    RefundLine,
    SandboxTrade,
)

__all__ = [
    "Order",
    "OrderEmail",
    "OrderEvent",
    "OrderLine",
    "Payment",
    "PaymentNotify",
    "Refund",
    "RefundLine",
    "SandboxTrade",
    "new_order_number",
    "new_token",
]
