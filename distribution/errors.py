"""What distribution's services raise: messages are safe to show."""

from __future__ import annotations

from config.lib.errors import DomainError


class DistributionError(DomainError):
    code = "distribution_error"


class ResellerError(DistributionError):
    """An application or an operator's decision that the reseller's state refuses."""

    code = "reseller_error"


class DownlineError(DistributionError):
    """A downline binding that would make a cycle or a tree deeper than three levels."""

    code = "downline_error"


class CommissionError(DistributionError):
    code = "commission_error"


class PayoutError(DistributionError):
    code = "payout_error"
