"""The client IP (config/lib/clientip.py): X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory
from django.urls import reverse

from config.lib.clientip import client_ip
from config.lib.env import env_networks
from orders.models import Order
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes

PROXY = "10.0.0.2"


def _ip(remote="198.51.100.20", xff=None):
    meta = {"REMOTE_ADDR": remote}
    if xff is not None:
        meta["HTTP_X_FORWARDED_FOR"] = xff
    return client_ip(RequestFactory().get("/", **meta))


@pytest.fixture
def behind_proxy(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/16", "2001:db8:ffff::/48", "192.0.2.1"]


def test_without_trusted_proxies_a_forged_header_is_ignored(settings):
    settings.TRUSTED_PROXIES = []

    assert _ip(remote="198.51.100.20", xff="203.0.113.7") == "198.51.100.20"


def test_a_header_from_an_untrusted_peer_is_ignored(behind_proxy):
    assert _ip(remote="198.51.100.20", xff="203.0.113.7") == "198.51.100.20"


def test_a_trusted_proxy_forwards_the_client_address(behind_proxy):
    assert _ip(remote=PROXY, xff="203.0.113.7") == "203.0.113.7"


def test_what_the_client_wrote_left_of_the_proxy_entry_is_not_believed(
    behind_proxy,
):
    # The client sent "X-Forwarded-For: 1.1.1.1"; our proxy appended its peer.
    assert _ip(remote=PROXY, xff="1.1.1.1, 203.0.113.7") == "203.0.113.7"


def test_a_chain_of_trusted_proxies_is_walked_from_the_right(behind_proxy):
    chain = "1.1.1.1, 203.0.113.7, 192.0.2.1, 10.0.5.9"

    assert _ip(remote=PROXY, xff=chain) == "203.0.113.7"


def test_a_single_listed_address_is_trusted_but_not_its_neighbours(behind_proxy):
    assert _ip(remote="192.0.2.1", xff="203.0.113.7") == "203.0.113.7"
    assert _ip(remote="192.0.2.2", xff="203.0.113.7") == "192.0.2.2"
    # Outside the /16: 10.1.x.x is just a client.
    assert _ip(remote="10.1.0.2", xff="203.0.113.7") == "10.1.0.2"


def test_when_every_hop_is_trusted_the_furthest_is_the_client(behind_proxy):
    assert _ip(remote=PROXY, xff="10.0.9.9, 10.0.0.3") == "10.0.9.9"


def test_ipv6_proxies_and_clients(behind_proxy):
    assert _ip(remote="2001:db8:ffff::1", xff="2001:DB8:0:0::42") == "2001:db8::42"
    assert _ip(remote="2001:db8:fffe::1", xff="203.0.113.7") == "2001:db8:fffe::1"


def test_ipv4_mapped_addresses_are_unwrapped(behind_proxy):
    # A dual-stack socket reports an IPv4 proxy as ::ffff:10.0.0.2.
    assert _ip(remote="::ffff:10.0.0.2", xff="::ffff:203.0.113.9") == "203.0.113.9"
    assert _ip(remote="::ffff:198.51.100.20") == "198.51.100.20"


def test_ports_written_by_a_proxy_are_dropped(behind_proxy):
    assert _ip(remote=PROXY, xff="203.0.113.7:51234") == "203.0.113.7"
    assert _ip(remote=PROXY, xff="[2001:db8::1]:443") == "2001:db8::1"


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "unknown",
        "203.0.113.7, garbage",
        "203.0.113.7\x00",
        "203.0.113.7\r\nX-Evil: 1",
        "203.0.113.7,,",
        ",",
        " ",
        "999.1.1.1",
        "203.0.113.7 198.51.100.1",
        "203.0.113.7; 198.51.100.1",
        "２０３.0.113.7",  # full-width digits
        "203.0.113.07",  # leading zero: octal on some stacks
        "[2001:db8::1",
        "[2001:db8::1]x",
        "203.0.113.7:99999",
        "203.0.113.7:",
        "2001:db8::1:443x",
        "203.0.113.0/24",
        ", ".join(["203.0.113.7"] * 30),  # too many hops
        "2001:db8::1, " * 100 + "203.0.113.7",  # too long
    ],
)
def test_a_malformed_header_is_ignored_as_a_whole(behind_proxy, header):
    assert _ip(remote=PROXY, xff=header) == PROXY


@pytest.mark.parametrize("remote", [None, "", "unix:/run/gunicorn.sock", "1.2.3"])
def test_no_usable_remote_addr_gives_none(behind_proxy, remote):
    request = RequestFactory().get("/", HTTP_X_FORWARDED_FOR="203.0.113.7")
    if remote is None:
        del request.META["REMOTE_ADDR"]
    else:
        request.META["REMOTE_ADDR"] = remote

    assert client_ip(request) is None


def test_the_answer_is_canonical_never_the_raw_string(behind_proxy):
    assert _ip(remote="2001:0DB8:0000::0001") == "2001:db8::1"
    assert _ip(remote="fe80::1%eth0") == "fe80::1"


def test_trusted_proxies_setting_parses_addresses_and_cidrs(monkeypatch):
    monkeypatch.setenv("TRUSTED_PROXIES", " 10.0.0.1/8 ,192.0.2.1, 2001:db8::/32,")

    assert env_networks("TRUSTED_PROXIES") == [
        "10.0.0.0/8",
        "192.0.2.1/32",
        "2001:db8::/32",
    ]


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "proxy.internal", "*", "10.0.0.0/8 x"])
def test_a_typo_in_trusted_proxies_is_a_startup_error(monkeypatch, bad):
    monkeypatch.setenv("TRUSTED_PROXIES", f"192.0.2.1,{bad}")

    with pytest.raises(ImproperlyConfigured, match="TRUSTED_PROXIES"):
        env_networks("TRUSTED_PROXIES")


@pytest.mark.django_db
def test_an_order_records_the_forwarded_client_address(alice_client, behind_proxy):
    sku = SkuFactory(code="TX-VIP-MONTH", product__slug="tx-vip")
    stock_codes(sku, ["TXCODE000001"])

    response = alice_client.post(
        reverse("orders:checkout"),
        {"sku": "TX-VIP-MONTH", "quantity": 1, "token": "t-1"},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.7",
    )

    assert response.status_code == 302
    assert Order.objects.get().ip_address == "203.0.113.7"


@pytest.mark.django_db
def test_an_order_from_an_untrusted_peer_records_the_peer(alice_client, behind_proxy):
    sku = SkuFactory(code="TX-VIP-MONTH", product__slug="tx-vip")
    stock_codes(sku, ["TXCODE000001"])

    alice_client.post(
        reverse("orders:checkout"),
        {"sku": "TX-VIP-MONTH", "quantity": 1, "token": "t-1"},
        REMOTE_ADDR="198.51.100.20",
        HTTP_X_FORWARDED_FOR="203.0.113.7",
    )

    assert Order.objects.get().ip_address == "198.51.100.20"
