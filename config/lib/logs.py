"""Logging filters."""

from __future__ import annotations

import logging


class DropConflicts(logging.Filter):
    """Drop django.request's warning for each 409 answer.

    A 409 is checkout saying "sold out" (or "not enough left"): in a flash sale
    thousands of them a second, each an expected answer to a shopper, not an
    event an operator can act on. Other 4xx and every 5xx are still logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "status_code", None) != 409
