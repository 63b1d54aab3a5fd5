from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ConfigConfig(AppConfig):
    default = True
    name = "config"
    verbose_name = "Kaquan"

    def ready(self) -> None:
        from config.lib import dbhealth, requestend

        dbhealth.connect()
        requestend.connect()


class KaquanAdminConfig(admin_apps.AdminConfig):
    default = False
    default_site = "config.admin.KaquanAdminSite"
