from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = _("商品目录")

    def ready(self) -> None:
        # Saving or deleting catalog rows retires the cached catalog (signals).
        from catalog import cache  # noqa: F401
