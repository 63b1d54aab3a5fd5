"""Django's and allauth's authentication backends, reading the signed-in user in plain SQL.

Every signed-in request loads its user through the session's backend
(`backend.get_user`). Django's does it with `User.objects.get(pk=…)`, ~750 Python
calls of ORM work per request, a sixth of a checkout's Python work
(docs/PERFORMANCE.md, "Paid path, session 5"). Here the same row is read with
`config.lib.db.row_get` (one parameterised SELECT of the same columns, through the
fields' converters). Everything else is the parents': authentication (allauth's
login by username or email, its MFA flow), permissions, and the session's auth
hash check that `django.contrib.auth.get_user` does with the user returned here.

Sessions written before these paths existed name Django's or allauth's class;
the session engine reads them as these (config/lib/sessions.py).
"""

from __future__ import annotations

from typing import Any

from allauth.account.auth_backends import AuthenticationBackend as AllauthBackend
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend as DjangoModelBackend

from config.lib.db import row_get


def _user(backend: DjangoModelBackend, user_id: Any) -> Any:
    """What `ModelBackend.get_user` returns: the active user with that id, or None."""
    user = row_get(get_user_model(), pk=user_id)
    if user is None or not backend.user_can_authenticate(user):
        return None
    return user


class ModelBackend(DjangoModelBackend):
    def get_user(self, user_id: Any) -> Any:
        return _user(self, user_id)


class AuthenticationBackend(AllauthBackend):  # type: ignore[misc]  # allauth: Any to mypy
    def get_user(self, user_id: Any) -> Any:
        return _user(self, user_id)
