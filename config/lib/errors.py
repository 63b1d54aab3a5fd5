"""The DomainError tree: rule violations that services raise and views translate."""

from __future__ import annotations


class DomainError(Exception):
    """A business rule said no. `message` is safe to show to the user."""

    code = "domain_error"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return str(self.message)
