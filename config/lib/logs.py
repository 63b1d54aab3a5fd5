"""Logging filters."""

from __future__ import annotations

import logging


class DropConflicts(logging.Filter):
    """Drop django.request's warning for each 409 answer and each risk block.

    A 409 is checkout saying "sold out" (or "not enough left"): in a flash sale
    thousands of them a second, each an expected answer to a shopper, not an
    event an operator can act on. A checkout stopped by a risk rule (a 403 whose
    request carries `risk_blocked`) is already recorded as a RiskEvaluation; a
    bot's attack would otherwise flood the log. Other 4xx (a CSRF failure
    included) and every 5xx are still logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if status == 409:
            return False
        request = getattr(record, "request", None)
        return not (status == 403 and getattr(request, "risk_blocked", False))
