"""Order use cases. One function per use case; see the modules for details."""

from __future__ import annotations

from orders.services.checkout import (
    CheckoutError,
    SkuUnavailableError,
    TooManyUnpaidOrdersError,
    order_cancel,
    order_check,
    order_expire_unpaid,
    order_place,
)
from orders.services.delivery import order_code_reveal, order_deliver
from orders.services.emails import (
    order_email_dispatch,
    order_email_flush,
    order_email_send,
)
from orders.services.payments import (
    NotifyResult,
    payment_notify_handle,
    payment_start,
    refund_flush,
    refund_submit,
    sandbox_notify_deliver,
    sandbox_trade_decide,
)

__all__ = [
    "CheckoutError",
    "NotifyResult",
    "SkuUnavailableError",
    "TooManyUnpaidOrdersError",
    "order_cancel",
    "order_check",
    "order_code_reveal",
    "order_deliver",
    "order_email_dispatch",
    "order_email_flush",
    "order_email_send",
    "order_expire_unpaid",
    "order_place",
    "payment_notify_handle",
    "payment_start",
    "refund_flush",
    "refund_submit",
    "sandbox_notify_deliver",
    "sandbox_trade_decide",
]
