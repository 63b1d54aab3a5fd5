"""Orders, payments, refunds, the payment-notify log and the email outbox."""

from __future__ import annotations

from orders.models.aftersales import BatchFlag, ProblemReport, ReturnedCode
from orders.models.alerts import OperatorAlert, OperatorAlertEmail, OperatorAlertKind
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
    "BatchFlag",
    "OperatorAlert",
    "OperatorAlertEmail",
    "OperatorAlertKind",
    "Order",
    "OrderEmail",
    "OrderEvent",
    "OrderLine",
    "Payment",
    "PaymentNotify",
    "ProblemReport",
    "Refund",
    "RefundLine",
    "ReturnedCode",
    "SandboxTrade",
    "new_order_number",
    "new_token",
]
