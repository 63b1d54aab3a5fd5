"""Resellers, tiers and prices, attribution, and the commission ledger with payouts."""

from __future__ import annotations

from distribution.models.ledger import CommissionEntry, CommissionRule, Payout
from distribution.models.partners import (
    ApiKey,
    ApiNonce,
    PartnerAccount,
    PartnerBalanceEntry,
    PartnerOrder,
    WebhookAttempt,
    WebhookDelivery,
)
from distribution.models.resellers import (
    CustomerBinding,
    MinimumResalePrice,
    OrderAttribution,
    Reseller,
    Tier,
    TierPrice,
    new_referral_code,
)

__all__ = [
    "ApiKey",
    "ApiNonce",
    "CommissionEntry",
    "CommissionRule",
    "CustomerBinding",
    "MinimumResalePrice",
    "OrderAttribution",
    "PartnerAccount",
    "PartnerBalanceEntry",
    "PartnerOrder",
    "Payout",
    "Reseller",
    "Tier",
    "TierPrice",
    "WebhookAttempt",
    "WebhookDelivery",
    "new_referral_code",
]
