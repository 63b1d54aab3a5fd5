"""The client's IP address, the one way every part of Kaquan reads it.

`REMOTE_ADDR` is the peer of the socket. Behind the production proxy that peer
is the proxy, and the shopper's address is in `X-Forwarded-For`, which anyone
can also forge. So the header is read only when `REMOTE_ADDR` is listed in
`settings.TRUSTED_PROXIES` (addresses and CIDRs), and then walked from the
right: each trusted proxy appended the address it saw, so the first address
that is not a trusted proxy is the client, and everything left of it is
whatever the client claimed. A header that is malformed in any way (too long,
too many hops, an entry that is not an IP address, control characters) is
ignored as a whole and `REMOTE_ADDR` used: a proxy we trust never writes
garbage, so garbage came from the client.

The answer is always a canonical address (`ipaddress` round-trip, IPv4-mapped
IPv6 unwrapped to IPv4, no zone id) or None; never a string taken verbatim
from the request. Used for orders, audit logs, the request log and allauth's
rate limits (accounts/adapter.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Real chains are a handful of hops; anything longer is a client padding it.
MAX_HEADER_LENGTH = 1024
MAX_HOPS = 20


def client_ip(request: HttpRequest) -> str | None:
    """The client's address as a canonical string, or None when there is none.

    Raises: nothing; a bad header is ignored, a bad REMOTE_ADDR gives None.
    """
    remote = parse_ip(request.META.get("REMOTE_ADDR"))
    if remote is None:
        return None
    proxies = trusted_networks(tuple(getattr(settings, "TRUSTED_PROXIES", ())))
    if not proxies or not _is_trusted(remote, proxies):
        return str(remote)
    hops = _forwarded_hops(request.META.get("HTTP_X_FORWARDED_FOR"))
    if not hops:
        return str(remote)
    for hop in reversed(hops):
        if not _is_trusted(hop, proxies):
            return str(hop)
    # Every hop is one of ours (an internal call): the furthest one is the client.
    return str(hops[0])


def parse_ip(value: object, *, allow_port: bool = False) -> IPAddress | None:
    """One address, canonical: IPv4-mapped IPv6 unwrapped, zone id dropped.

    With allow_port, "1.2.3.4:80" and "[2001:db8::1]:443" are accepted too (some
    proxies write the port into X-Forwarded-For). None for anything else.
    """
    if not isinstance(value, str) or not value or len(value) > 64:
        return None
    if not value.isascii() or not value.isprintable() or value != value.strip():
        return None
    text = value
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            return None
        rest = text[end + 1 :]
        if rest and not (allow_port and _is_port_suffix(rest)):
            return None
        text = text[1:end]
    elif allow_port and text.count(":") == 1:
        host, _, port = text.partition(":")
        if not _is_port_suffix(":" + port):
            return None
        text = host
    if ":" in text:
        text = text.split("%", 1)[0]  # an IPv6 zone id means nothing off this host
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=8)
def trusted_networks(entries: tuple[object, ...]) -> tuple[IPNetwork, ...]:
    """settings.TRUSTED_PROXIES as networks (strings or network objects)."""
    networks: list[IPNetwork] = []
    for entry in entries:
        if isinstance(entry, ipaddress.IPv4Network | ipaddress.IPv6Network):
            networks.append(entry)
        else:
            networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
    return tuple(networks)


def _is_trusted(address: IPAddress, proxies: Iterable[IPNetwork]) -> bool:
    return any(
        address.version == network.version and address in network for network in proxies
    )


def _is_port_suffix(text: str) -> bool:
    port = text[1:]
    return (
        text.startswith(":")
        and 0 < len(port) <= 5
        and port.isdigit()
        and port.isascii()
        and int(port) <= 65535
    )


def _forwarded_hops(header: object) -> list[IPAddress]:
    """The header's addresses left to right, or [] if any part is malformed."""
    if not isinstance(header, str) or not header or len(header) > MAX_HEADER_LENGTH:
        return []
    parts = header.split(",")
    if len(parts) > MAX_HOPS:
        return []
    hops: list[IPAddress] = []
    for part in parts:
        hop = parse_ip(part.strip(" \t"), allow_port=True)
        if hop is None:
            return []
        hops.append(hop)
    return hops
