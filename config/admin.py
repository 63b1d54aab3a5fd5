"""The admin site: staff log in through allauth (rate limits, MFA) and need TOTP."""

from __future__ import annotations

from urllib.parse import urlencode

from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _


class KaquanAdminSite(admin.AdminSite):
    site_header = _("卡券 Kaquan 运营后台")
    site_title = _("卡券 Kaquan")
    index_title = _("运营管理")

    def has_permission(self, request: HttpRequest) -> bool:
        if not super().has_permission(request):
            return False
        if not settings.STAFF_REQUIRE_MFA:
            return True
        return request.user.pk is not None and staff_has_totp(request.user.pk)

    def login(
        self, request: HttpRequest, extra_context: dict | None = None
    ) -> HttpResponse:
        """Send staff to allauth's login (throttled, MFA-aware) or to TOTP set-up."""
        next_url = safe_next_url(request)
        user = request.user
        if user.is_authenticated and user.is_active and user.is_staff:
            if self.has_permission(request):
                return HttpResponseRedirect(next_url)
            return HttpResponseRedirect(reverse("mfa_activate_totp"))
        return HttpResponseRedirect(
            reverse("account_login") + "?" + urlencode({"next": next_url})
        )


def safe_next_url(request: HttpRequest) -> str:
    """`?next=` when it stays on this site, else the admin index (no open redirect)."""
    next_url = request.GET.get("next", "")
    if next_url and url_has_allowed_host_and_scheme(
        next_url,
        allowed_hosts={request.get_host()},
        require_https=request.is_secure(),
    ):
        return next_url
    return reverse("admin:index")


def staff_has_totp(user_id: int) -> bool:
    has_totp: bool = Authenticator.objects.filter(
        user_id=user_id, type=Authenticator.Type.TOTP
    ).exists()
    return has_totp


class ReadOnlyAdminMixin:
    """View permission only: no add, change or delete, whoever asks."""

    def has_add_permission(
        self, request: HttpRequest, obj: Model | None = None
    ) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: Model | None = None
    ) -> bool:
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: Model | None = None
    ) -> bool:
        return False
