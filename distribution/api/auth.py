"""Signed requests and per-key rate limits for the partner API (SPEC §4.4)."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest
from ninja.security.base import AuthBase
from ninja.throttling import SimpleRateThrottle

from config.lib.clientip import client_ip
from distribution.models import ApiKey
from distribution.partners.keys import request_authenticate


class SignatureAuth(AuthBase):
    """X-Api-Key, X-Timestamp, X-Nonce and X-Signature, checked by
    `request_authenticate` against the exact path (query string included) and
    body bytes. Its errors (401, or 400 for a body holding NUL) go to the API's
    exception handlers."""

    openapi_type = "apiKey"
    openapi_in = "header"
    openapi_name = "X-Api-Key"
    openapi_description = (
        "Also send X-Timestamp (unix seconds), X-Nonce and X-Signature = hex "
        "HMAC-SHA256(secret, METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nSHA256HEX(BODY))."
    )

    def __call__(self, request: HttpRequest) -> ApiKey:
        headers = request.headers
        key = request_authenticate(
            key_id=headers.get("X-Api-Key", ""),
            timestamp=headers.get("X-Timestamp", ""),
            nonce=headers.get("X-Nonce", ""),
            signature=headers.get("X-Signature", ""),
            method=request.method or "",
            path=request.get_full_path(),
            body=request.body,
        )
        request.partner_ip = client_ip(request)  # type: ignore[attr-defined]
        return key


class KeyRateThrottle(SimpleRateThrottle):
    """PARTNER_API_RATE_LIMIT requests per key, counted in the rate-limit cache.

    ninja's SimpleRateThrottle keeps a list of timestamps per key and rewrites
    it (read, modify, write: two concurrent requests can both pass) on an
    instance shared by every thread. This one counts a fixed window with the
    cache's atomic add/incr (Redis INCR; config/lib/ratelimitcache.py keeps
    counting per process while Redis is down) and keeps no state on itself.
    """

    cache_format = "partner-api:rl:%(ident)s:%(window)d"

    def __init__(self) -> None:
        super().__init__(rate=settings.PARTNER_API_RATE_LIMIT)

    def _limits(self) -> tuple[int, int]:
        # Read per request: tests and operators change the setting.
        count, duration = self.parse_rate(settings.PARTNER_API_RATE_LIMIT)
        return count or 0, duration or 1

    def allow_request(self, request: HttpRequest) -> bool:
        key: Any = getattr(request, "auth", None)
        if not isinstance(key, ApiKey):
            return True
        count, duration = self._limits()
        window = int(time.time()) // duration
        cache_key = self.cache_format % {"ident": key.key_id, "window": window}
        cache = caches["ratelimit"]
        cache.add(cache_key, 0, timeout=duration + 1)
        try:
            used = cache.incr(cache_key)
        except ValueError:  # expired between add and incr: a fresh window
            cache.add(cache_key, 1, timeout=duration + 1)
            used = 1
        return int(used) <= count

    def wait(self) -> float | None:
        _count, duration = self._limits()
        return float(duration - int(time.time()) % duration)
