"""The only outbound HTTP wrapper: a mandatory timeout and no private targets by default.

Private, loopback and link-local addresses are refused unless
HTTP_ALLOW_PRIVATE_ADDRESSES is on (development and tests, where the bundled
simulators listen on loopback), so a configured URL cannot be turned against
internal services.

`json_client` gives the supplier adapters a pooled, cached client per base URL
(connection reuse, separate connect/read timeouts, no redirects); its target is
checked on every request.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import threading
from collections import OrderedDict
from typing import Any
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


def http_request(
    method: str,
    url: str,
    *,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float | None = None,
) -> httpx.Response:
    """Any method with exact body bytes and headers (signed APIs: WeChat Pay v3)."""
    _check_target(url)
    return httpx.request(
        method,
        url,
        content=content,
        headers=headers,
        timeout=timeout or settings.HTTP_TIMEOUT_SECONDS,
        follow_redirects=False,
    )


# --- Pooled JSON clients (supplier adapters) ----------------------------------
# One httpx.Client per (process, base URL, timeouts): suppliers are called many
# times a minute, and a pooled keep-alive connection saves a TCP and TLS handshake
# on each call. The pid is part of the key so a Celery prefork child never
# inherits its parent's sockets.
JSON_CLIENTS_MAX = 64
_json_clients: OrderedDict[tuple[int, str, float, float], JsonClient] = OrderedDict()
_json_clients_lock = threading.Lock()


class JsonClient:
    """POSTs JSON objects to one base URL over a pooled connection; never follows redirects."""

    def __init__(
        self, base_url: str, *, connect_timeout: float, read_timeout: float
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            timeout=httpx.Timeout(
                connect=connect_timeout,
                read=read_timeout,
                write=read_timeout,
                pool=connect_timeout,
            ),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        )

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def post_json(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """POST `body` as compact UTF-8 JSON. Raises HttpTargetRefused, httpx.HTTPError."""
        url = self.url(path)
        # Checked on every call, not once: the setting can change, and DNS too.
        _check_target(url)
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        return self._client.post(
            url,
            content=content,
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Accept": "application/json",
            },
        )

    def close(self) -> None:
        self._client.close()


def json_client(
    base_url: str, *, connect_timeout: float, read_timeout: float
) -> JsonClient:
    """The cached pooled client for this base URL and these timeouts."""
    key = (
        os.getpid(),
        base_url.rstrip("/"),
        float(connect_timeout),
        float(read_timeout),
    )
    with _json_clients_lock:
        client = _json_clients.get(key)
        if client is not None:
            _json_clients.move_to_end(key)
            return client
        client = JsonClient(
            base_url, connect_timeout=connect_timeout, read_timeout=read_timeout
        )
        _json_clients[key] = client
        # Evicted clients are not closed: another thread may be mid-request on one.
        # Their pools close when garbage-collected.
        while len(_json_clients) > JSON_CLIENTS_MAX:
            _json_clients.popitem(last=False)
        return client


def json_clients_close() -> None:
    """Close and forget every cached client (tests, worker shutdown)."""
    with _json_clients_lock:
        clients = list(_json_clients.values())
        _json_clients.clear()
    for client in clients:
        client.close()
