"""Response headers every page gets: Cache-Control and the Content Security Policy.

Cache-Control: every page Django answers is `private` unless a view said
`public`: pages carry the visitor's CSRF token and cookies (even the anonymous
pages served from the whole-page cache, config/lib/pages.py, whose cache is
server-side), so no shared proxy or CDN may keep one for another visitor. Pages
that show codes already answer `no-store` (never_cache on the order page and
the reveal), which includes `private`. Static files never reach this
middleware: WhiteNoise answers them first, cacheable for a year.

Content Security Policy (django-csp 4, settings.CONTENT_SECURITY_POLICY): no
inline scripts anywhere; the storefront's behaviour is in static/js. The admin
gets two additions of its own, measured against Django's and import-export's
templates rather than exempted from the policy:
- inline <style> blocks (Django's change list when list_editable, our vault
  and top-up admin templates): `style-src 'unsafe-inline'`;
- import-export's export form has one inline handler,
  `onchange="onSelectToggleChange(event)"`: allowed by its hash alone
  ('unsafe-hashes' covers event handlers whose text hashes to a listed value,
  never inline <script> blocks).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from csp.constants import HEADER, UNSAFE_HASHES, UNSAFE_INLINE
from csp.middleware import CheckableLazyObject, CSPMiddleware, PolicyParts
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import patch_cache_control

ADMIN_PREFIX = "/admin/"
# What django-csp's view decorators leave on a response (as instance attributes).
_PER_RESPONSE_ATTRS = frozenset(
    f"_csp_{kind}{suffix}"
    for kind in ("exempt", "config", "update", "replace")
    for suffix in ("", "_ro")
)
CACHE_CONTROL = "Cache-Control"

# (name, value) pairs Django's ResponseHeaders took as they are: its checks of a
# header (ASCII name, latin-1 value, no newline; ~8 Python calls a write) depend
# on the pair alone. Our own headers repeat a handful of pairs on every
# response; clients choose none of them (a language or Vary value comes from
# the settings' or our views' few values). Bounded all the same.
_TAKEN_SIZE = 256
_taken: set[tuple[str, str]] = set()


def header_put(response: HttpResponseBase, name: str, key: str, value: str) -> None:
    """`response.headers[name] = value` (`key`: `name.lower()`), the same entry;
    a pair Django took as it was before is stored without its checks again."""
    headers = response.headers
    if (name, value) in _taken:
        headers._store[key] = (name, value)
        return
    headers[name] = value
    if headers._store[key] == (name, value):
        if len(_taken) >= _TAKEN_SIZE:
            _taken.clear()
        _taken.add((name, value))


def header_get(response: HttpResponseBase, key: str) -> str | None:
    """`response.headers.get(name)` by its lowercased `key`."""
    entry = response.headers._store.get(key)
    return None if entry is None else entry[1]


def _handler_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


# The exact text of import-export's inline handler (admin/import_export/export.html).
IMPORT_EXPORT_TOGGLE_HANDLER = "onSelectToggleChange(event)"
ADMIN_POLICY_UPDATE: dict[str, list[str]] = {
    "style-src": [UNSAFE_INLINE],
    "script-src": [UNSAFE_HASHES, _handler_hash(IMPORT_EXPORT_TOGGLE_HANDLER)],
}


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware, with the admin's additions and the header built once.

    django-csp rebuilds the policy string for every response (about 30 µs, a few
    per cent of a cached storefront page; 8 µs here). Nearly every response gets
    one of two strings (storefront or admin), so those are kept, rebuilt only
    when the setting object changes (override_settings in tests). Anything per response
    (a nonce used by a template, csp_* view decorators, a report-only policy,
    excluded prefixes, DEBUG's error pages) takes django-csp's own path.
    """

    # (the setting it was built from, {is admin: header}), swapped as one object.
    _cache: tuple[object, dict[bool, str]] = (None, {})
    # What the settings say, read once (emptied when one of them changes, below):
    # (whether one policy serves every response, DEBUG, the policy). Reading
    # three settings cost every response ~12 Python calls.
    _settings: tuple[bool, bool, Any] | None = None

    @staticmethod
    def _settings_read() -> tuple[bool, bool, Any]:
        policy = getattr(settings, "CONTENT_SECURITY_POLICY", None)
        shared = bool(
            policy
            and not policy.get("EXCLUDE_URL_PREFIXES")
            and not getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None)
        )
        seen = (shared, bool(settings.DEBUG), policy)
        # On this class, where the receiver below empties it (not a subclass's).
        ContentSecurityPolicyMiddleware._settings = seen
        return seen

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        shared, debug, policy = self._settings or self._settings_read()
        if (
            not shared
            or getattr(request, "_csp_nonce", None) is not None
            or not _PER_RESPONSE_ATTRS.isdisjoint(vars(response))
            or (debug and response.status_code in (404, 500))
        ):
            return super().process_response(request, response)
        if _HEADER_KEY not in response.headers._store:
            header_put(
                response,
                HEADER,
                _HEADER_KEY,
                self._policy(policy, admin=request.path_info.startswith(ADMIN_PREFIX)),
            )
        # As django-csp does: a nonce asked for after this point is an error.
        # One object serves every request: it is never evaluated (it raises).
        request.csp_nonce = _NONCE_TOO_LATE  # type: ignore[attr-defined]
        return response

    def _policy(self, policy: object, *, admin: bool) -> str:
        built_from, headers = self._cache
        if built_from is not policy:
            headers = {}
            self._cache = (policy, headers)
        if admin not in headers:
            headers[admin] = build_policy(update=ADMIN_POLICY_UPDATE if admin else None)
        return headers[admin]

    def get_policy_parts(
        self,
        request: HttpRequest,
        response: HttpResponseBase,
        report_only: bool = False,
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if request.path_info.startswith(ADMIN_PREFIX):
            update = dict(parts.update or {})
            for directive, sources in ADMIN_POLICY_UPDATE.items():
                update[directive] = [*update.get(directive, ()), *sources]
            parts.update = update
        return parts


_HEADER_KEY = HEADER.lower()
_NONCE_TOO_LATE = CheckableLazyObject(CSPMiddleware._csp_nonce_post_response)
CSP_SETTINGS = frozenset(
    {"CONTENT_SECURITY_POLICY", "CONTENT_SECURITY_POLICY_REPORT_ONLY", "DEBUG"}
)


@receiver(setting_changed)
def _csp_settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in CSP_SETTINGS:
        ContentSecurityPolicyMiddleware._settings = None


# A view's Cache-Control value -> that value made private (what
# patch_cache_control(response, private=True) writes, which depends on nothing
# else). Views write a handful of values; clients none.
PRIVATE_CACHE_SIZE = 64
_CACHE_CONTROL_KEY = CACHE_CONTROL.lower()
_private: dict[str, str] = {}


def _made_private(response: HttpResponseBase, value: str) -> str:
    patched = _private.get(value)
    if patched is None:
        patch_cache_control(response, private=True)
        patched = response.headers[CACHE_CONTROL]
        if len(_private) >= PRIVATE_CACHE_SIZE:
            _private.clear()
        _private[value] = patched
    return patched


def cache_private(response: HttpResponseBase) -> None:
    """Mark the response `Cache-Control: private` unless the view chose `public`.

    Writes exactly what patch_cache_control would, without parsing and
    rebuilding the same value on every response.
    """
    value = header_get(response, _CACHE_CONTROL_KEY)
    if value is None:
        header_put(response, CACHE_CONTROL, _CACHE_CONTROL_KEY, "private")
    elif "public" not in value:
        patched = _made_private(response, value)
        if patched != value:
            header_put(response, CACHE_CONTROL, _CACHE_CONTROL_KEY, patched)


def cache_private_over_public(response: HttpResponseBase) -> None:
    """patch_cache_control(response, private=True): private even where a view said
    public (a response that sets a visitor's cookie)."""
    headers = response.headers
    value = headers.get(CACHE_CONTROL)
    patched = "private" if value is None else _made_private(response, value)
    if patched != value:
        headers[CACHE_CONTROL] = patched
