"""Order use cases. One function per use case; see the modules for details."""

from __future__ import annotations

from orders.services.checkout import (
    CheckoutError,
    CheckoutTokenReusedError,
    SkuUnavailableError,
    TooManyUnpaidOrdersError,
    order_cancel,
    order_expire_unpaid,
    order_place,
)
from orders.services.delivery import (
    order_code_reveal,
    order_fulfil,
    order_mark_paid,
    order_settle,
)
from orders.services.emails import (
    order_email_dispatch,
    order_email_drain,
    order_email_flush,
    order_email_send,
)
from orders.services.notify_intake import (
    notify_rejection_note,
    notify_source_limited,
)
from orders.services.notify_sweep import (
    payment_lost_notify_check,
    payment_lost_notify_sweep,
    payment_query_honour,
)
from orders.services.partnered import order_partnered_mark
from orders.services.payment_return import payment_return_check
from orders.services.payments import (
    NotifyResult,
    payment_notify_handle,
    payment_query_apply,
    payment_start,
)
from orders.services.refund_results import (
    refund_gateway_sweep,
    refund_notify_handle,
    refund_result_apply,
)
from orders.services.refunds import (
    RefundError,
    refund_flush,
    refund_request,
    refund_retry,
    refund_submit,
)
from orders.services.review import (
    ReviewError,
    order_review_approve,
    order_review_reject,
)
from orders.services.soldout import checkout_known_sold_out

__all__ = [
    "CheckoutError",
    "CheckoutTokenReusedError",
    "NotifyResult",
    "RefundError",
    "ReviewError",
    "SkuUnavailableError",
    "TooManyUnpaidOrdersError",
    "checkout_known_sold_out",
    "notify_rejection_note",
    "notify_source_limited",
    "order_cancel",
    "order_code_reveal",
    "order_email_dispatch",
    "order_email_drain",
    "order_email_flush",
    "order_email_send",
    "order_expire_unpaid",
    "order_fulfil",
    "order_mark_paid",
    "order_partnered_mark",
    "order_place",
    "order_review_approve",
    "order_review_reject",
    "order_settle",
    "payment_lost_notify_check",
    "payment_lost_notify_sweep",
    "payment_notify_handle",
    "payment_query_apply",
    "payment_query_honour",
    "payment_return_check",
    "payment_start",
    "refund_flush",
    "refund_gateway_sweep",
    "refund_notify_handle",
    "refund_request",
    "refund_result_apply",
    "refund_retry",
    "refund_submit",
]
