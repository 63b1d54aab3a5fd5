"""The project's own user model (docs/DECISIONS.md, "A custom user model from the start").

It adds nothing yet: it exists so that fields risk and resellers need later
(an account's signup channel, a referral, a verified phone) are a migration on
this table, not a swap of AUTH_USER_MODEL under live foreign keys.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.utils.translation import gettext_lazy as _


class User(AbstractUser):
    class Meta:
        verbose_name = _("用户")
        verbose_name_plural = _("用户")
