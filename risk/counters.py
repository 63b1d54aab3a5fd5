"""The counts the risk rules need, from Redis when it answers, else from the database.

Redis (`RISK_COUNTERS_REDIS_URL`, default `REDIS_URL`): one sorted set per
subject value and scope (e.g. the orders of one device on one platform), scored
by time in ms, one member per checkout carrying its amount, quantity and a hash
of its recharge account. One Lua script per checkout (risk/counters_lua.py)
adds this checkout's provisional member, trims every set to the longest window
counted in it and computes every count, atomically: of 50 checkouts racing from one device
under a limit of 5, exactly 5 see a count of 5 or less. The member is the
checkout's *hold*: `counters_release` (a second small script) removes it when
no order is created; otherwise it stays until it is older than the longest
window (the set's EXPIRE).

Plain counts are ZCOUNTs (O(log n)). Sums (amount, quantity) and distinct
recharge accounts are read from a *running aggregate* per set and window, kept
next to the set: the fold of the set's members scored above the aggregate's
left edge. Each checkout moves the edge to now - window, reading only the
members that crossed it since the last checkout (or, when the clock went back,
that are inside again), and adds its own member; a release subtracts it. Each
member is thus read once entering and once leaving each window, whatever the
window holds; an aggregate is built from a scan of its window once, when first
asked for. Details and keys in risk/counters_lua.py.

KEY_PREFIX changed with the aggregates ("risk:c:" -> "risk:c2:"): a Redis still
holding the first script's sets is never read as if they had aggregates. The
epoch key is under the prefix, so at the deploy the epoch restarts and the
partial-window rule below counts from the database until Redis has seen whole
windows again.

Redis knows only what it has seen. Its counts are trusted for a window only
when they are complete for the whole of it: the script keeps an *epoch* (when
the counters started, or restarted after this process lost Redis: orders placed
meanwhile went only to the database), and each rule says since when it has been
counted as it is (RuleSpec.since). A count whose window reaches back before
either comes from the database too, and the larger of the two is used (Redis
sees racing checkouts, the database sees the history).

The database (orders tables) answers everything when Redis is not configured or
fails (logged, never an open gate), and always answers what Redis cannot:
unpaid orders held (pending, not expired), lifetime SKU limits and stage PAID
(the order is already counted). Database counts include the current checkout
by adding it to what the orders tables hold (the order itself excluded).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

import redis
from django.conf import settings

from risk import counters_lua
from risk.dbcounts import db_counts
from risk.matching import counted_value, normalize_recharge_account
from risk.rules import Metric, Query
from risk.types import Signals, Stage

logger = logging.getLogger(__name__)

# "c2": the sets of the first script (no running aggregates) are never read
# with the aggregates' invariant; see the module docstring.
KEY_PREFIX = "risk:c2:"
EPOCH_KEY = KEY_PREFIX + "epoch"
# A checkout must not wait on a sick Redis: fail fast and count from the database.
SOCKET_TIMEOUT = 0.5

_METRIC_CODES = {
    Metric.ORDERS: "n",
    Metric.AMOUNT: "a",
    Metric.QUANTITY: "q",
    Metric.RECHARGE_ACCOUNTS: "r",
}


@dataclass(frozen=True)
class CounterResult:
    counts: dict[Query, Decimal]
    # The provisional member first, then the sets it was added to ("" when none).
    hold: tuple[str, ...] = ()
    source: str = "db"  # "redis", "redis+db" or "db" (recorded with the evaluation)


class _Redis:
    """One client per URL (a client is a thread-safe wrapper of its pool)."""

    lock = threading.Lock()
    clients: ClassVar[
        dict[str, tuple[redis.Redis, Any]]
    ] = {}  # url -> (client, checkout script)
    releases: ClassVar[dict[str, Any]] = {}  # url -> release script
    # Set when this process failed to reach Redis: the next script call restarts
    # the epoch, since the orders placed meanwhile are only in the database.
    gap = False


def _redis_url() -> str:
    url = getattr(settings, "RISK_COUNTERS_REDIS_URL", None)
    if url is None:
        url = getattr(settings, "REDIS_URL", "")
    return str(url or "")


def _client(url: str) -> tuple[redis.Redis, Any]:
    found = _Redis.clients.get(url)
    if found is None:
        with _Redis.lock:
            found = _Redis.clients.get(url)
            if found is None:
                client = redis.Redis.from_url(
                    url,
                    socket_connect_timeout=SOCKET_TIMEOUT,
                    socket_timeout=SOCKET_TIMEOUT,
                    retry_on_timeout=False,
                )
                found = (client, client.register_script(counters_lua.CHECKOUT))
                _Redis.releases[url] = client.register_script(counters_lua.RELEASE)
                _Redis.clients[url] = found
    return found


@functools.lru_cache(maxsize=4096)  # a checkout digests its device, IP... per set
def _digest(value: str) -> str:
    return hashlib.blake2b(value.encode(), digest_size=8).hexdigest()


def _set_key(query: Query, value: str) -> str:
    scope = query.scope if query.scope_id is None else f"{query.scope}{query.scope_id}"
    return f"{KEY_PREFIX}{query.subject}:{scope}:{_digest(value)}"


def _to_ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _redis_counts(
    url: str, signals: Signals, queries: Mapping[Query, float]
) -> tuple[dict[Query, Decimal], set[Query], tuple[str, ...]]:
    """Counts from Redis (this checkout added), the queries it cannot answer
    alone (incomplete window) and the hold. Raises: redis.RedisError."""
    keys: dict[str, int] = {}  # set key -> retention ms
    plan: list[tuple[Query, str, int]] = []  # query, set, window ms
    for query in queries:
        value = counted_value(query.subject, signals)
        if value is None or query.window is None:
            continue
        key = _set_key(query, value)
        window_ms = query.window * 1000
        keys[key] = max(keys.get(key, 0), window_ms)
        plan.append((query, key, window_ms))
    if not plan:
        return {}, set(), ()
    cents = int((signals.amount * 100).to_integral_value())
    ra = normalize_recharge_account(signals.recharge_account)
    member = "|".join(
        (
            secrets.token_hex(8),
            str(cents),
            str(signals.quantity),
            _digest(ra) if ra else "",
        )
    )
    now_ms = _to_ms(signals.now)
    key_list = list(keys)
    index = {key: i + 2 for i, key in enumerate(key_list)}  # Lua KEYS are 1-based
    args = (
        now_ms,
        member,
        "1" if _Redis.gap else "0",
        " ".join(str(keep) for keep in keys.values()),
        " ".join(
            f"{index[key]} {window_ms} {_METRIC_CODES[query.metric]}"
            for query, key, window_ms in plan
        ),
    )
    script = _client(url)[1]
    reply = script(keys=[EPOCH_KEY, *key_list], args=args)
    _Redis.gap = False
    epoch_ms = int(reply[0])
    counts: dict[Query, Decimal] = {}
    partial: set[Query] = set()
    # reply[1]: how many members the script parsed (for tests and benchmarks).
    for (query, _key, window_ms), total in zip(plan, reply[2:], strict=True):
        count = Decimal(int(total))
        counts[query] = count / 100 if query.metric == Metric.AMOUNT else count
        start_ms = max(epoch_ms, int(queries[query] * 1000))
        if start_ms > now_ms - window_ms:
            partial.add(query)
    return counts, partial, (member, *key_list)


def counters_read(signals: Signals, queries: Mapping[Query, float]) -> CounterResult:
    """The value of every query for this checkout, the checkout itself included.

    `queries` maps each query to the time (unix seconds) since which its rules
    have counted as they do (risk.rules.queries_for). At stage CHECKOUT with
    Redis configured the windowed counts come from Redis and the checkout is
    added there provisionally (CounterResult.hold).
    Raises: nothing from Redis (it degrades to the database); database errors.
    Locks: none (the Redis script is atomic).
    Idempotent: no: each call at checkout adds a provisional member.
    """
    url = _redis_url()
    counts: dict[Query, Decimal] = {}
    hold: tuple[str, ...] = ()
    from_db = dict(queries)
    source = "db"
    if url and signals.stage == Stage.CHECKOUT:
        try:
            counts, partial, hold = _redis_counts(url, signals, queries)
        except redis.RedisError as exc:
            _Redis.gap = True
            logger.warning(
                "risk counters: redis unavailable, counting from the database (%s)",
                type(exc).__name__,
            )
        else:
            from_db = {
                q: s for q, s in queries.items() if q not in counts or q in partial
            }
            if counts:  # Redis was asked (some count has a window)
                source = "redis+db" if from_db else "redis"
    if from_db:
        for query, value in db_counts(signals, from_db).items():
            # Both are lower bounds of the truth: Redis sees the racing
            # checkouts, the database the history Redis missed.
            counts[query] = max(value, counts.get(query, value))
    return CounterResult(counts=counts, hold=hold, source=source)


def counters_release(hold: tuple[str, ...]) -> None:
    """Remove a checkout's provisional member from its sets and their aggregates.

    Raises: nothing (a member Redis keeps by mistake only makes the limits
    stricter until it expires; logged).
    Idempotent: yes.
    """
    if len(hold) < 2:
        return
    member, *keys = hold
    url = _redis_url()
    if not url:
        return
    _client(url)
    try:
        _Redis.releases[url](keys=keys, args=[member])
    except redis.RedisError as exc:
        logger.warning(
            "risk counters: hold not released, it expires with its window (%s)",
            type(exc).__name__,
        )
