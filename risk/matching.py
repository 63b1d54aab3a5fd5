"""Matching what a shopper typed against the block and allow lists: pure, no ORM.

Normalising first (an email domain NFKC-folded, case-folded, IDNA-encoded; an
IP canonical, IPv4-mapped IPv6 as IPv4; a recharge account trimmed and
case-folded), so that "ＭａｉｌＩｎａｔｏｒ．ＣＯＭ." is mailinator.com.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from risk.types import Signals

# The normalisers are memoised: every rule of a checkout asks for the same
# values, and IDNA encoding is the slowest step of an evaluation.
LIST_BLOCK = "block"
LIST_ALLOW = "allow"


class Subject(StrEnum):
    """Mirrors risk.models.Subject."""

    IP = "ip"
    DEVICE = "device"
    ACCOUNT = "account"
    RECHARGE_ACCOUNT = "recharge_account"
    EMAIL_DOMAIN = "email_domain"


@dataclass(frozen=True)
class Lists:
    """The active block and allow lists, normalised for matching."""

    # (list kind, subject) -> normalised values (IPs excluded)
    values: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    # list kind -> (IP version, prefix length) -> the networks' prefixes as
    # integers (the address shifted right by its host bits; single addresses
    # are /32 or /128): a checkout's IP is matched by shifting its integer, one
    # set lookup per prefix length in use, no network object built.
    networks: Mapping[str, Mapping[tuple[int, int], frozenset[int]]] = field(
        default_factory=dict
    )


# --- normalising what shoppers type ------------------------------------------

# Label separators IDNA accepts besides "." (ideographic, fullwidth, halfwidth).
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


@functools.lru_cache(maxsize=4096)
def normalize_domain(value: str) -> str:
    """A domain as lists store it: NFKC (fullwidth letters), case-folded, IDNA
    (punycode), no trailing dot. "ＭａｉｌＩｎａｔｏｒ．ＣＯＭ." -> "mailinator.com"."""
    domain = unicodedata.normalize("NFKC", value).translate(_DOTS).strip()
    domain = domain.strip(".").casefold()
    # nameprep also drops invisible characters (zero-width space, soft hyphen);
    # an impossible label (too long, empty) is matched as typed.
    with contextlib.suppress(UnicodeError):
        domain = domain.encode("idna").decode("ascii")
    return domain.strip(".")


@functools.lru_cache(maxsize=4096)
def email_domain(email: str) -> str:
    """The normalised domain of an email ("" when it has none)."""
    text = unicodedata.normalize("NFKC", email)  # a fullwidth "＠" is an "@"
    _local, at, domain = text.rpartition("@")
    return normalize_domain(domain) if at else ""


@functools.lru_cache(maxsize=4096)
def normalize_ip(value: str | None) -> str | None:
    """The canonical text of an IP address (IPv4-mapped IPv6 as IPv4), or None."""
    if not value:
        return None
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


@functools.lru_cache(maxsize=4096)
def normalize_recharge_account(value: str) -> str:
    return unicodedata.normalize("NFKC", value).strip().casefold()


@functools.lru_cache(maxsize=4096)
def _ip_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(value)


def subject_value(subject: str, signals: Signals) -> str | None:
    """What the checkout is for `subject`, normalised; None when unknown."""
    if subject == Subject.IP:
        return normalize_ip(signals.ip)
    if subject == Subject.DEVICE:
        return signals.device or None
    if subject == Subject.ACCOUNT:
        return str(signals.user_id) if signals.user_id is not None else None
    if subject == Subject.RECHARGE_ACCOUNT:
        return normalize_recharge_account(signals.recharge_account) or None
    if subject == Subject.EMAIL_DOMAIN:
        return email_domain(signals.email) or None
    return None


# An IPv6 client is counted by its /64: one home line or one server gets a
# whole /64 and can rotate addresses inside it at will.
IPV6_COUNTING_PREFIX = 64


def counted_value(subject: str, signals: Signals) -> str | None:
    """What counters count `subject` by: subject_value, but an IPv6 address as
    its /64 network ("2001:db8:1:2::/64")."""
    value = subject_value(subject, signals)
    if subject == Subject.IP and value is not None and ":" in value:
        net = ipaddress.ip_network(f"{value}/{IPV6_COUNTING_PREFIX}", strict=False)
        return str(net)
    return value


def parents(domain: str) -> Iterable[str]:
    """mail.evil.example -> mail.evil.example, evil.example, example."""
    labels = domain.split(".")
    return (".".join(labels[i:]) for i in range(len(labels)))


def lists_build(entries: Iterable[tuple[str, str, str]]) -> Lists:
    """Lists from (list kind, subject, value) rows; values the admin form
    normalised are normalised again (rows written by other means)."""
    values: dict[tuple[str, str], set[str]] = {}
    networks: dict[str, dict[tuple[int, int], set[int]]] = {}
    for list_kind, subject, raw in entries:
        if subject == Subject.IP:
            try:
                net = ipaddress.ip_network(raw.strip(), strict=False)
            except ValueError:
                continue  # the admin form refuses these; never crash a checkout
            by_len = networks.setdefault(list_kind, {})
            host_bits = net.max_prefixlen - net.prefixlen
            by_len.setdefault((net.version, net.prefixlen), set()).add(
                int(net.network_address) >> host_bits
            )
            continue
        if subject == Subject.EMAIL_DOMAIN:
            value = normalize_domain(raw)
        elif subject == Subject.RECHARGE_ACCOUNT:
            value = normalize_recharge_account(raw)
        else:
            value = raw.strip()
        values.setdefault((list_kind, subject), set()).add(value)
    return Lists(
        values={k: frozenset(v) for k, v in values.items()},
        networks={
            kind: {n: frozenset(nets) for n, nets in by_len.items()}
            for kind, by_len in networks.items()
        },
    )


def list_match(lists: Lists, list_kind: str, subject: str, signals: Signals) -> str:
    """The list entry the checkout matches ("" for none)."""
    value = subject_value(subject, signals)
    if value is None:
        return ""
    if subject == Subject.IP:
        ip = _ip_address(value)
        number = int(ip)
        # One set lookup per prefix length in use, however long the list.
        for (version, prefixlen), nets in lists.networks.get(list_kind, {}).items():
            if version != ip.version:
                continue
            host_bits = ip.max_prefixlen - prefixlen
            if number >> host_bits in nets:
                network = (
                    ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
                )
                return str(network((number >> host_bits << host_bits, prefixlen)))
        return ""
    listed = lists.values.get((list_kind, subject), frozenset())
    if subject == Subject.EMAIL_DOMAIN:
        # A listed domain covers its subdomains.
        return next((d for d in parents(value) if d in listed), "")
    return value if value in listed else ""
