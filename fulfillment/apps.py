from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class FulfillmentConfig(AppConfig):
    name = "fulfillment"
    verbose_name = _("卡密与发货")

    def ready(self) -> None:
        # A new batch of codes lowers its SKU's sold-out flag (signals).
        from fulfillment import signals  # noqa: F401
