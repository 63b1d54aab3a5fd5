from __future__ import annotations

import pytest

from config.lib.http import HttpTargetRefused, http_post_form


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/x", "file:///etc/passwd", "http:///nohost"]
)
def test_http_refuses_non_http_urls(url):
    with pytest.raises(HttpTargetRefused):
        http_post_form(url, {})


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/notify",
        "http://[::1]:1/",
        "http://10.0.0.1/",
        "http://169.254.169.254/",
    ],
)
def test_http_refuses_private_targets_unless_allowed(settings, url):
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = False

    with pytest.raises(HttpTargetRefused, match="non-public"):
        http_post_form(url, {"a": "b"})


def test_http_reaches_loopback_when_allowed(settings, live_server):
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True

    response = http_post_form(f"{live_server.url}/payments/notify/sandbox/", {"x": "y"})

    assert response.status_code == 400  # our own endpoint, answering an unsigned notify
