"""What the partner API's services raise: each error carries its HTTP status and code.

The API answers `{"error": {"code": ..., "message": ...}}` with `status`
(distribution/api/errors.py). Messages are safe to show to the partner.
"""

from __future__ import annotations

from distribution.errors import DistributionError


class PartnerApiError(DistributionError):
    """Invalid input (400) unless a subclass says otherwise."""

    status = 400
    code = "invalid"


class ApiAuthError(PartnerApiError):
    """A bad or missing key, signature, timestamp or nonce."""

    status = 401
    code = "unauthorized"


class InsufficientBalanceError(PartnerApiError):
    status = 402
    code = "insufficient_balance"


class PartnerNotFoundError(PartnerApiError):
    status = 404
    code = "not_found"


class OutTradeNoReusedError(PartnerApiError):
    status = 409
    code = "out_trade_no_reused"
