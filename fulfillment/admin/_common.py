"""Helpers shared by the batch and code admins.

The import (a batch's created_by) and the reveal/export (an audit row's actor) both
attribute what they do to the acting staff member, so both must resolve that person
the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
