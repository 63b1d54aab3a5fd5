"""The counts the risk rules need, from Redis when it answers, else from the database.

Redis (`RISK_COUNTERS_REDIS_URL`, default `REDIS_URL`): one sorted set per
subject value and scope (e.g. the orders of one device on one platform), scored
by time in ms, one member per checkout carrying its amount, quantity and a hash
of its recharge account. One Lua script per checkout trims every set to its
longest window, adds this checkout's provisional member and computes every
count, atomically: of 50 checkouts racing from one device under a limit of 5,
exactly 5 see a count of 5 or less. The member is the checkout's *hold*:
`counters_release` removes it when no order is created; otherwise it stays
until it is older than the longest window (the set's EXPIRE).

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

from risk.dbcounts import db_counts
from risk.matching import counted_value, normalize_recharge_account
from risk.rules import Metric, Query
from risk.types import Signals, Stage

logger = logging.getLogger(__name__)

KEY_PREFIX = "risk:c:"
EPOCH_KEY = KEY_PREFIX + "epoch"
# A checkout must not wait on a sick Redis: fail fast and count from the database.
SOCKET_TIMEOUT = 0.5

_METRIC_CODES = {
    Metric.ORDERS: "n",
    Metric.AMOUNT: "a",
    Metric.QUANTITY: "q",
    Metric.RECHARGE_ACCOUNTS: "r",
}

# KEYS[1] the epoch, KEYS[2..] the counter sets. ARGV, packed into five
# strings (a call of ~50 arguments cost more to build and send than the script
# ran): now_ms, member, reset_epoch ("1"/"0"), then per set "retention_ms
# scan_ms" (scan: the longest window a sum or distinct count needs, 0 for none),
# then per count "set_index window_ms metric_code", all space-separated.
# Returns {epoch, counts...}. Plain counts are ZCOUNTs; each set's members are
# read and parsed at most once, however many sums and distinct counts ask.
_SCRIPT = """
local now = tonumber(ARGV[1])
local member = ARGV[2]
if ARGV[3] == '1' then redis.call('SET', KEYS[1], now) end
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  redis.call('SET', KEYS[1], now)
  epoch = now
else
  epoch = tonumber(epoch)
end
local scan = {}
local i = 2
for keep, wide in string.gmatch(ARGV[4], '(%d+) (%d+)') do
  keep = tonumber(keep)
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - keep)
  redis.call('ZADD', KEYS[i], now, member)
  redis.call('PEXPIRE', KEYS[i], keep)
  scan[i] = tonumber(wide)
  i = i + 1
end
-- Plain counts now; sums and distinct counts gathered per set, to be read
-- in one pass over its members below.
local out = {epoch}
local sums = {}
for idx, window, metric in string.gmatch(ARGV[5], '(%d+) (%d+) (%a)') do
  idx = tonumber(idx)
  local since = now - tonumber(window)
  if metric == 'n' then
    out[#out + 1] = redis.call('ZCOUNT', KEYS[idx], '(' .. since, '+inf')
  else
    out[#out + 1] = 0
    sums[idx] = sums[idx] or {}
    table.insert(sums[idx], {#out, since, metric, {}})
  end
end
for idx, asks in pairs(sums) do
  -- One count alone needs no scores: the range is its window.
  local alone = #asks == 1
  local found
  if alone then
    found = redis.call('ZRANGEBYSCORE', KEYS[idx], '(' .. (now - scan[idx]), '+inf')
  else
    found = redis.call(
      'ZRANGEBYSCORE', KEYS[idx], '(' .. (now - scan[idx]), '+inf', 'WITHSCORES')
  end
  local step = alone and 1 or 2
  for j = 1, #found, step do
    local score = alone and 0 or tonumber(found[j + 1])
    local cents, qty, ra = string.match(found[j], '^[^|]*|([^|]*)|([^|]*)|(.*)$')
    for _, ask in ipairs(asks) do
      if alone or score > ask[2] then
        local at, metric, seen = ask[1], ask[3], ask[4]
        if metric == 'a' then
          out[at] = out[at] + tonumber(cents)
        elseif metric == 'q' then
          out[at] = out[at] + tonumber(qty)
        elseif ra ~= '' and not seen[ra] then
          seen[ra] = true
          out[at] = out[at] + 1
        end
      end
    end
  end
end
return out
"""


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
    ] = {}  # url -> (client, script)
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
                found = (client, client.register_script(_SCRIPT))
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
    keys: dict[str, list[int]] = {}  # set key -> [retention ms, scan ms]
    plan: list[tuple[Query, str, int]] = []  # query, set, window ms
    for query in queries:
        value = counted_value(query.subject, signals)
        if value is None or query.window is None:
            continue
        key = _set_key(query, value)
        window_ms = query.window * 1000
        spans = keys.setdefault(key, [0, 0])
        spans[0] = max(spans[0], window_ms)
        if query.metric != Metric.ORDERS:
            spans[1] = max(spans[1], window_ms)
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
        " ".join(f"{keep} {scan}" for keep, scan in keys.values()),
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
    for (query, _key, window_ms), total in zip(plan, reply[1:], strict=True):
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
    """Remove a checkout's provisional member from its sets.

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
    client, _script = _client(url)
    try:
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zrem(key, member)
            pipe.execute()
    except redis.RedisError as exc:
        logger.warning(
            "risk counters: hold not released, it expires with its window (%s)",
            type(exc).__name__,
        )
