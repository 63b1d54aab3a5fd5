"""allauth, the Kaquan way: one client IP, and login throttling nobody can aim.

- The client IP is `config.lib.clientip.client_ip` (TRUSTED_PROXIES), the same
  address orders and audit logs record; allauth's own X-Forwarded-For reading
  (ALLAUTH_TRUSTED_PROXY_COUNT) is not used. Behind the production proxy every
  shopper would otherwise share the proxy's address and its rate limits.
- Failed logins are counted per client address (many accounts from one place)
  and per account *and* address (allauth's `key`, extended here with the
  address), never per account alone: an attacker elsewhere can no longer lock
  a shopper out by typing wrong passwords for their email.
- A generous per-account ceiling (`login_failed_account`) slows a password
  spray from many addresses, but it never applies where the account has logged
  in before (the same device cookie or address within KNOWN_PLACE_DAYS), so it
  cannot lock the owner out of their own device (docs/DECISIONS.md).
- The counters live in the "ratelimit" cache (config/lib/ratelimitcache.py),
  which keeps counting in the process while Redis is down instead of 500s.
"""

from __future__ import annotations

import hashlib
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.internal import ratelimit
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.cache import caches
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.utils.connection import ConnectionProxy

from config.lib.clientip import client_ip

RATELIMIT_CACHE = "ratelimit"
ACCOUNT_CEILING_ACTION = "login_failed_account"
KNOWN_PLACE_DAYS = 90


def use_ratelimit_cache() -> None:
    """Point allauth's counters (rate limits, used TOTP codes) at the "ratelimit" cache.

    allauth reads `django.core.cache.cache` at module level and has no setting
    for another alias; tests/config/test_login_defence.py fails if a new
    allauth version stops honouring this.
    """
    from allauth.mfa.totp.internal import auth as totp_auth

    proxy = ConnectionProxy(caches, RATELIMIT_CACHE)
    ratelimit.cache = proxy
    totp_auth.cache = proxy


class AccountAdapter(DefaultAccountAdapter):  # type: ignore[misc]  # allauth: untyped
    def get_client_ip(self, request: HttpRequest) -> str:
        ip = client_ip(request)
        if ip is None:
            raise PermissionDenied("Unable to determine client IP address")
        return ip

    def _account_key(self, request: HttpRequest, **credentials: Any) -> str:
        """allauth's per-account key: the site and the login, lower-cased."""
        key: str = super()._get_login_attempts_cache_key(request, **credentials)
        return key

    def _get_login_attempts_cache_key(
        self, request: HttpRequest, **credentials: Any
    ) -> str:
        """Per account *and* client address (IPv6 by allauth's /64 prefix)."""
        account = self._account_key(request, **credentials)
        return f"{account}@{ratelimit.get_ip(request)}"

    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        """Count this attempt per address, per account-and-address, and per account.

        Raises: ValidationError("too_many_login_attempts") past any of them; the
        per-account ceiling is skipped where the account has logged in before.
        A successful login rolls all three back (allauth's `authenticate`).
        """
        super().pre_authenticate(request, **credentials)
        if self._known_place(request, **credentials):
            return
        ceiling = ratelimit.consume(
            request,
            app="allauth.account",
            action=ACCOUNT_CEILING_ACTION,
            key=self._account_key(request, **credentials),
        )
        usage = self._login_failed_rl_usage
        if not ceiling:
            # Nothing was tried: the password is not checked past the ceiling.
            usage.rollback()
            raise self.validation_error("too_many_login_attempts")
        usage.usage.extend(ceiling.usage)

    def authenticate(
        self, request: HttpRequest, **credentials: Any
    ) -> AbstractBaseUser | None:
        user: AbstractBaseUser | None = super().authenticate(request, **credentials)
        if user is not None:
            self._remember_place(request, **credentials)
        return user

    def _delete_login_attempts_cached_email(
        self, request: HttpRequest, **credentials: Any
    ) -> None:
        """After a password reset: this address's count and the account ceiling."""
        super()._delete_login_attempts_cached_email(request, **credentials)
        ratelimit.clear(
            request,
            app="allauth.account",
            action=ACCOUNT_CEILING_ACTION,
            key=self._account_key(request, **credentials),
        )

    def _place_keys(self, request: HttpRequest, **credentials: Any) -> list[str]:
        from risk.device import request_device_id

        account = self._account_key(request, **credentials)
        digest = hashlib.sha256(account.encode("utf-8")).hexdigest()
        keys = [f"login-known:{digest}:ip:{ratelimit.get_ip(request)}"]
        # Signed by us (risk/device.py): a client cannot claim another's device.
        device = request_device_id(request)
        if device:
            keys.append(f"login-known:{digest}:device:{device}")
        return keys

    def _known_place(self, request: HttpRequest, **credentials: Any) -> bool:
        found = caches[RATELIMIT_CACHE].get_many(
            self._place_keys(request, **credentials)
        )
        return bool(found)

    def _remember_place(self, request: HttpRequest, **credentials: Any) -> None:
        caches[RATELIMIT_CACHE].set_many(
            dict.fromkeys(self._place_keys(request, **credentials), 1),
            KNOWN_PLACE_DAYS * 24 * 3600,
        )
