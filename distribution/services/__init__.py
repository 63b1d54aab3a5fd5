"""Distribution use cases: resellers and their tree, attribution, the commission
ledger, payouts. Every public name is re-exported here."""

from __future__ import annotations

from distribution.errors import (
    CommissionError,
    DistributionError,
    DownlineError,
    PayoutError,
    ResellerError,
)
from distribution.services.ledger import (
    commission_on_line_delivered,
    commission_on_line_refunded,
    commission_settle,
)
from distribution.services.payouts import payout_approve, payout_reject, payout_request
from distribution.services.resellers import (
    customer_bind,
    order_attribute,
    reseller_apply,
    reseller_approve,
    reseller_bind_parent,
    reseller_reject,
    reseller_suspend,
)

__all__ = [
    "CommissionError",
    "DistributionError",
    "DownlineError",
    "PayoutError",
    "ResellerError",
    "commission_on_line_delivered",
    "commission_on_line_refunded",
    "commission_settle",
    "customer_bind",
    "order_attribute",
    "payout_approve",
    "payout_reject",
    "payout_request",
    "reseller_apply",
    "reseller_approve",
    "reseller_bind_parent",
    "reseller_reject",
    "reseller_suspend",
]
