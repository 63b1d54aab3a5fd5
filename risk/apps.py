from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RiskConfig(AppConfig):
    name = "risk"
    verbose_name = _("风控")

    def ready(self) -> None:
        # Connects the signals that retire cached rules when an operator edits them.
        from risk import cache  # noqa: F401
