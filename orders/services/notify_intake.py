"""What a gateway notify may be before it is acted on, and what of it is kept.

A notify endpoint is open to the internet: anyone can POST to it. Every notify
is recorded, but a record must not become the attacker's storage, nor a value
PostgreSQL refuses (a 500 that records nothing). So, before anything else:

- the payload is stored bounded (`payload_bound`): at most `PAYLOAD_MAX_BYTES`,
  each value cut with a marker, characters PostgreSQL text cannot hold escaped;
  the raw body's SHA-256 is kept beside it;
- a field no gateway ever sends (a NUL, a lone surrogate, a value longer than
  the column it goes to) makes the notify `invalid` before it is parsed
  (`fields_problem`), and so does an answer no real trade has (an amount that
  is negative, zero, above `AMOUNT_MAX` or has more than two decimals; an
  order number or trade number longer than ours) after it (`parsed_problem`);
- `notify_record` writes that record (committed on its own) and parses it:
  payment and refund notifies are received the same way;
- each source address may send `PAYMENT_NOTIFY_RATE_LIMIT` *rejected* notifies a
  minute (`notify_rejection_note`, `notify_source_limited`), counted in the
  shared cache; then it is answered 429, unrecorded, until the minute is over.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache, caches
from django.db.models import Field, Model

from config.lib.cache import RedisCache
from config.lib.db import rows_update
from config.lib.db_fold import row_insert_given
from config.lib.money import CENT
from config.lib.ratelimitcache import CACHE_ERRORS
from orders.gateways import NotifyRejected, ParsedNotify
from orders.models import Order, Payment, PaymentNotify

logger = logging.getLogger(__name__)

PAYLOAD_MAX_BYTES = 16 * 1024  # the stored payload, all keys and values (UTF-8)
VALUE_MAX_CHARS = 4096  # one value; a real notify's longest (WeChat's body) is ~1 KB
KEY_MAX_CHARS = 64
TRUNCATED = "…[truncated {} chars]"
MARKER_RESERVE = 48  # bytes kept for a marker or `_omitted`
OMITTED_KEY = "_omitted"
# No payment we take comes near this; a larger one is a forgery or a bug.
AMOUNT_MAX = CENT * 10**11  # ¥1,000,000,000.00
# PostgreSQL text holds no NUL; UTF-8 (and so psycopg) no lone surrogate.
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _max_length(model: type[Model], name: str) -> int:
    field = model._meta.get_field(name)
    assert isinstance(field, Field)  # noqa: S101 (a column, not a relation)
    return int(field.max_length or 0)


# The fields that are stored in their own columns, and how long those are.
COLUMNS = {
    name: _max_length(PaymentNotify, name)
    for name in ("out_trade_no", "trade_no", "notify_id")
}
ORDER_NUMBER_MAX = _max_length(Order, "number")
TRADE_NO_MAX = _max_length(Payment, "trade_no")
RATE_WINDOW_SECONDS = 60

Parsed = TypeVar("Parsed")


def storable(value: str) -> str:
    """`value` with what PostgreSQL text cannot hold escaped (NUL as `\\u0000`)."""
    if not UNSTORABLE.search(value):
        return value
    return UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", value)


def _cut(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    marker = TRUNCATED.format(len(value) - limit)
    return value[:limit] + marker


def payload_bound(fields: Mapping[str, str]) -> dict[str, str]:
    """The notify's fields as stored: storable, each value and the whole bounded.

    Keys and values together stay within PAYLOAD_MAX_BYTES (UTF-8: a page of
    Chinese is three times its length); fields past the budget are dropped and
    counted under `_omitted`.
    """
    if _kept_whole(fields):
        return dict(fields)
    payload: dict[str, str] = {}
    budget = PAYLOAD_MAX_BYTES - MARKER_RESERVE  # room for `_omitted`
    omitted = 0
    for raw_key, raw_value in fields.items():
        key = _cut(storable(str(raw_key)), KEY_MAX_CHARS)
        whole = storable(str(raw_value))
        room = budget - len(key.encode()) - MARKER_RESERVE
        if room < 0 or key in payload:
            omitted += 1
            continue
        kept = whole[:VALUE_MAX_CHARS]
        if len(kept.encode()) > room:
            kept = kept.encode()[:room].decode(errors="ignore")
        value = (
            kept if kept == whole else kept + TRUNCATED.format(len(whole) - len(kept))
        )
        payload[key] = value
        budget -= len(key.encode()) + len(value.encode())
    if omitted:
        payload[OMITTED_KEY] = f"{omitted} fields"
    return payload


# A value's UTF-8 takes at most 4 bytes a character; a payload whose fields,
# counted so, fit here is stored whole by the loop of `payload_bound`: that loop
# keeps field i when the bytes of fields 0..i come within PAYLOAD_MAX_BYTES less
# two MARKER_RESERVEs.
_WHOLE_CHARS_MAX = (PAYLOAD_MAX_BYTES - 2 * MARKER_RESERVE) // 4


def _kept_whole(fields: Mapping[str, str]) -> bool:
    """Whether `payload_bound` keeps every field as it is (a real notify: a few
    short plain fields): nothing to escape, cut or leave out."""
    # Each test over all the fields at once (the loops run in C): a str, not
    # too long, nothing unstorable (a character class: joined by a newline,
    # no match can span two strings), within the budget.
    keys, values = list(fields), list(fields.values())
    if not keys:
        return True
    return (
        {*map(type, keys), *map(type, values)} == {str}
        and max(map(len, keys)) <= KEY_MAX_CHARS
        and max(map(len, values)) <= VALUE_MAX_CHARS
        and not UNSTORABLE.search("\n".join([*keys, *values]))
        and sum(map(len, keys)) + sum(map(len, values)) <= _WHOLE_CHARS_MAX
    )


def fields_problem(fields: Mapping[str, str]) -> str:
    """Why these raw fields cannot be a gateway's notify; "" when they may be."""
    # One search over every key and value (a character class: joined by a
    # newline, no match spans two); the field is looked for only on a match.
    found = UNSTORABLE.search("\n".join([*fields, *fields.values()]))
    for key, value in fields.items() if found else ():
        if UNSTORABLE.search(key) or UNSTORABLE.search(value):
            what = "NUL byte" if "\x00" in key + value else "invalid character"
            return f"{what} in field {storable(key)[:40]}"
    for name, limit in COLUMNS.items():
        if len(fields.get(name, "")) > limit:
            return f"{name} longer than {limit} characters"
    return ""


def parsed_problem(parsed: ParsedNotify) -> str:
    """Why a verified notify (or a query's answer) names no trade of ours; "" when fine."""
    if len(parsed.out_trade_no) > ORDER_NUMBER_MAX:
        return f"out_trade_no longer than {ORDER_NUMBER_MAX} characters"
    if not parsed.trade_no or len(parsed.trade_no) > TRADE_NO_MAX:
        return f"trade_no empty or longer than {TRADE_NO_MAX} characters"
    if UNSTORABLE.search(parsed.out_trade_no + parsed.trade_no):
        return "invalid character in out_trade_no or trade_no"
    amount = parsed.amount
    if (
        not amount.is_finite()
        or amount <= 0
        or amount > AMOUNT_MAX
        or amount != amount.quantize(CENT)
    ):
        return f"amount {str(amount)[:24]} is not a payable amount"
    return ""


def notify_record(
    *,
    gateway_name: str,
    fields: dict[str, str],
    remote_addr: str | None,
    body: bytes | None,
    columns: tuple[str, ...],
    parse: Callable[[dict[str, str]], Parsed],
) -> tuple[PaymentNotify, Parsed | None]:
    """Record a notify as received, then parse it; None beside a rejected one.

    1. The row is written at once (committed on its own): its payload bounded and
       made storable, the raw body's SHA-256 beside it, `columns` (of COLUMNS)
       copied into their own columns; a field no gateway sends (`fields_problem`)
       records it `invalid` and it is not parsed.
    2. `parse` (the gateway's verification); its NotifyRejected is recorded as
       the outcome (its code, its message).
    """
    problem = fields_problem(fields)
    # The row written from its values, the instance built once from them.
    notify = row_insert_given(
        PaymentNotify,
        {
            "gateway": gateway_name,
            "payload": payload_bound(fields),
            "remote_addr": remote_addr,
            "body_sha256": hashlib.sha256(body).hexdigest() if body is not None else "",
            "outcome": (
                PaymentNotify.Outcome.INVALID
                if problem
                else PaymentNotify.Outcome.RECEIVED
            ),
            "message": problem[:200],
            # Without a problem every field is storable as it is.
            **{
                name: (storable(value) if problem else value)[:64]
                for name in columns
                for value in (fields.get(name, ""),)
            },
        },
    )
    if problem:
        return notify, None
    try:
        return notify, parse(fields)
    except NotifyRejected as exc:
        notify.outcome, notify.message = exc.code, str(exc)[:200]
        rows_update(
            PaymentNotify,
            {"pk": notify.pk},
            outcome=notify.outcome,
            message=notify.message,
        )
        return notify, None


@lru_cache(maxsize=256)  # a pure function; a gateway sends from a few addresses
def _source_key(source: str | None) -> str:
    """The counter's name for an address: IPv6 by its /64 (one host's usual share)."""
    if source is None:
        return "none"
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return "none"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False).network_address)
    return str(address)


def notify_source_limited(*, source: str | None, now: float | None = None) -> bool:
    """Whether `source` sent PAYMENT_NOTIFY_RATE_LIMIT rejected notifies this minute.

    Only rejections count (`notify_rejection_note`): a gateway sends every paid
    order's notify from a few addresses, and a flash sale's hundreds a minute
    must never be refused; a forger's notifies are all rejected, and once over
    the limit its source is answered 429 without a record. One cache GET. While
    the cache is down nothing is limited (and it is logged): a gateway's notify
    must never be refused for our own outage.
    """
    limit = int(settings.PAYMENT_NOTIFY_RATE_LIMIT)
    if limit <= 0:
        return False
    backend = caches["default"]
    try:
        key = _rate_key(source, now)
        # Redis (config/lib/cache.py): the same GET on a shorter call path.
        count = (
            backend.counter_get(key)
            if isinstance(backend, RedisCache)
            else backend.get(key)
        )
    except CACHE_ERRORS:
        logger.warning("notify rate limit not read: cache unavailable", exc_info=True)
        return False
    return int(count or 0) >= limit


def notify_rejection_note(*, source: str | None, now: float | None = None) -> None:
    """Count one rejected notify from `source` (a fixed window: one ADD, one INCR)."""
    if int(settings.PAYMENT_NOTIFY_RATE_LIMIT) <= 0:
        return
    key = _rate_key(source, now)
    try:
        cache.add(key, 0, timeout=RATE_WINDOW_SECONDS * 2)
        count = int(cache.incr(key))
    except CACHE_ERRORS:
        logger.warning("notify rejection not counted: cache unavailable", exc_info=True)
        return
    except ValueError:  # expired between the ADD and the INCR: a new window
        return
    if count == int(settings.PAYMENT_NOTIFY_RATE_LIMIT):
        logger.warning("notify rate limit reached for %s", source)


def _rate_key(source: str | None, now: float | None) -> str:
    window = int((time.time() if now is None else now) // RATE_WINDOW_SECONDS)
    return f"notify-rate:{_source_key(source)}:{window}"
