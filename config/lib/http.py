"""The only outbound HTTP wrapper: a mandatory timeout and no private targets by default.

Private, loopback and link-local addresses are refused unless
HTTP_ALLOW_PRIVATE_ADDRESSES is on (development and tests, where the bundled
simulators listen on loopback), so a configured URL cannot be turned against
internal services.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import httpx
from django.conf import settings


class HttpTargetRefused(httpx.HTTPError):
    pass


def _check_target(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpTargetRefused(
            f"refusing non-HTTP URL {parts.scheme}://{parts.hostname}"
        )
    if settings.HTTP_ALLOW_PRIVATE_ADDRESSES:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    for info in socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP):
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise HttpTargetRefused(f"refusing non-public address for {parts.hostname}")


def http_post_form(
    url: str, fields: dict[str, str], *, timeout: float | None = None
) -> httpx.Response:
    _check_target(url)
    return httpx.post(
        url,
        data=fields,
        timeout=timeout or settings.HTTP_TIMEOUT_SECONDS,
        follow_redirects=False,
    )


def http_get(
    url: str, *, params: dict[str, str] | None = None, timeout: float | None = None
) -> httpx.Response:
    _check_target(url)
    return httpx.get(
        url, params=params, timeout=timeout or settings.HTTP_TIMEOUT_SECONDS
    )
