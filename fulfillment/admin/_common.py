"""Helpers shared by the fulfillment admins.

The import (a batch's created_by) and the reveal/export (an audit row's actor) both
attribute what they do to the acting staff member, so both must resolve that person
the same way. The top-up timeline and the callback log both show supplier payloads,
so both mask them the same way.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

if TYPE_CHECKING:
    from accounts.models import User


def _staff_user(request: HttpRequest) -> User:
    """The acting staff member (admin_view has already turned anonymous users away)."""
    user = request.user
    if isinstance(user, AnonymousUser):
        raise PermissionDenied
    return user


# --- Supplier payloads on admin pages -------------------------------------------

MASK = "***"
# Keys whose values never reach a page, at any depth: the request/reply signature and
# a card's sealed secret. The adapter already stores them redacted; the pages mask
# again so a future adapter that forgets cannot leak them here.
SECRET_KEYS = frozenset({"sign", "secret"})


def mask_secrets(value: Any, *, key: str = "") -> Any:
    """A copy of a JSON value with signatures, secrets and card numbers masked."""
    if isinstance(value, dict):
        return {
            k: MASK if k in SECRET_KEYS else mask_secrets(v, key=k)
            for k, v in value.items()
        }
    if isinstance(value, list):
        if key == "cards":
            return [
                {**mask_secrets(card), "number": MASK}
                if isinstance(card, dict)
                else MASK
                for card in value
            ]
        return [mask_secrets(v, key=key) for v in value]
    return value


def pretty_json(value: Any) -> str:
    """Masked, indented JSON text (escape it when rendering)."""
    return json.dumps(
        mask_secrets(value), ensure_ascii=False, indent=2, sort_keys=True, default=str
    )
