from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from config.lib import http
from config.lib.http import (
    HttpTargetRefused,
    http_post_form,
    json_client,
    json_clients_close,
)


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


# --- json_client: the pooled JSON client the supplier adapters use ---


class _EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so pooling can be observed

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/slow":
            time.sleep(0.5)
        reply = json.dumps(
            {
                "path": self.path,
                "content_type": self.headers.get("Content-Type"),
                "raw": body.decode(),
                "peer_port": self.client_address[1],
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format, *args):
        return


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # The timeout test hangs up before /slow answers: a broken pipe, expected.
        return


@pytest.fixture
def echo_url():
    server = _QuietServer(("127.0.0.1", 0), _EchoHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    json_clients_close()
    server.shutdown()
    server.server_close()


def test_json_client_is_cached_per_base_url_and_timeouts():
    a = json_client("https://a.example/", connect_timeout=1, read_timeout=2)

    assert json_client("https://a.example", connect_timeout=1, read_timeout=2) is a
    assert json_client("https://a.example", connect_timeout=1, read_timeout=3) is not a
    assert json_client("https://b.example", connect_timeout=1, read_timeout=2) is not a
    json_clients_close()
    assert json_client("https://a.example", connect_timeout=1, read_timeout=2) is not a


def test_json_client_posts_compact_utf8_json(settings, echo_url):
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True
    client = json_client(echo_url, connect_timeout=1, read_timeout=2)

    response = client.post_json("/api/order.get", {"b": "腾讯", "a": [1, 2]})

    echoed = response.json()
    assert response.status_code == 200
    assert echoed["path"] == "/api/order.get"
    assert echoed["content_type"].startswith("application/json")
    assert echoed["raw"] == '{"b":"腾讯","a":[1,2]}'


def test_json_client_reuses_its_connection(settings, echo_url):
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True
    client = json_client(echo_url, connect_timeout=1, read_timeout=2)

    first = client.post_json("x", {}).json()["peer_port"]
    second = client.post_json("x", {}).json()["peer_port"]

    assert first == second


def test_json_client_does_not_follow_redirects(settings, echo_url):
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True
    client = json_client(echo_url, connect_timeout=1, read_timeout=2)

    response = client.post_json("/redirect", {})

    assert response.status_code == 302


def test_json_client_times_out_on_a_slow_reply(settings, echo_url):
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True
    client = json_client(echo_url, connect_timeout=1, read_timeout=0.1)

    with pytest.raises(httpx.ReadTimeout):
        client.post_json("/slow", {})


def test_json_client_checks_the_target_on_every_request(settings, echo_url):
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = True
    client = json_client(echo_url, connect_timeout=1, read_timeout=2)
    client.post_json("x", {})
    settings.HTTP_ALLOW_PRIVATE_ADDRESSES = False

    with pytest.raises(HttpTargetRefused, match="non-public"):
        client.post_json("x", {})


def test_json_client_refuses_non_http_base_urls():
    client = json_client("ftp://127.0.0.1", connect_timeout=1, read_timeout=1)

    with pytest.raises(HttpTargetRefused):
        client.post_json("x", {})


def test_json_client_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(http, "JSON_CLIENTS_MAX", 2)
    first = json_client("https://a.example", connect_timeout=1, read_timeout=1)
    json_client("https://b.example", connect_timeout=1, read_timeout=1)
    json_client("https://a.example", connect_timeout=1, read_timeout=1)  # used again

    json_client("https://c.example", connect_timeout=1, read_timeout=1)

    assert json_client("https://a.example", connect_timeout=1, read_timeout=1) is first
    assert len(http._json_clients) == 2
    json_clients_close()
