"""The counters' two Lua scripts (risk/counters.py says what they count and why).

Keys, for one counter set S (a sorted set of checkout members scored by time in
ms, member "random|cents|qty|ra_digest"):
- S .. ':w' .. W: the running aggregate of S for a window of W ms, a hash:
  'e' its left edge (ms), 'a' the cents summed, 'q' the quantity summed, 'n'
  how many recharge-account digests it holds, and 'r:' .. digest how many of
  its members carry that digest. Invariant: it is the fold of the members of S
  scored above 'e'.
- S .. ':w': the registry of S's aggregates, a hash W -> when a checkout last
  asked for it (ms). Every checkout adding to S maintains every registered
  aggregate, asked or not: a checkout without a recharge account does not ask
  for the distinct count, an account that is no longer new not for its new
  account sum, and their members must still be in those aggregates. An
  aggregate nobody asked for during a whole window of its own is dropped (and
  rebuilt from S if asked again); an aggregate missing from the registry is
  never trusted (rebuilt).
The aggregate keys are built in the scripts, not passed in KEYS: fine on one
Redis (what Kaquan runs), not on Redis Cluster (it would need S in a hash tag).

Work per checkout: moving an edge reads only the members that crossed it since
the last checkout, so every member is read once entering and once leaving each
window; an aggregate is built from a scan of its window once, when first asked.
The reply's second element is how many members the call parsed (tests and
benchmarks read it; the engine does not).
"""

from __future__ import annotations

# Shared by both scripts: fold `members` into aggregate `agg` with `sign` (+1
# adds, -1 removes), one HINCRBY per field and per distinct digest.
_FOLD = """
local function fold(agg, members, sign)
  if #members == 0 then return 0 end
  local cents, qty, digests = 0, 0, {}
  for _, m in ipairs(members) do
    local c, n, r = string.match(m, '^[^|]*|([^|]*)|([^|]*)|(.*)$')
    cents = cents + tonumber(c)
    qty = qty + tonumber(n)
    if r ~= '' then digests[r] = (digests[r] or 0) + sign end
  end
  -- Never an increment of 0: -1 * 0 is '-0' in Lua, which HINCRBY refuses.
  if cents ~= 0 then redis.call('HINCRBY', agg, 'a', sign * cents) end
  if qty ~= 0 then redis.call('HINCRBY', agg, 'q', sign * qty) end
  local distinct = 0
  for r, d in pairs(digests) do
    local after = redis.call('HINCRBY', agg, 'r:' .. r, d)
    local before = after - d
    if after <= 0 then redis.call('HDEL', agg, 'r:' .. r) end
    if before <= 0 and after > 0 then
      distinct = distinct + 1
    elseif before > 0 and after <= 0 then
      distinct = distinct - 1
    end
  end
  if distinct ~= 0 then redis.call('HINCRBY', agg, 'n', distinct) end
  return #members
end
"""

# KEYS[1] the epoch, KEYS[2..] the counter sets. ARGV, packed into five
# strings (a call of ~50 arguments cost more to build and send than the script
# ran): now_ms, member, reset_epoch ("1"/"0"), then per set its retention_ms
# (the longest window this checkout counts in it), then per count "set_index
# window_ms metric_code", all space-separated. Returns {epoch, members parsed,
# counts...}. Plain counts are ZCOUNTs, sums and distinct counts one HGET of
# their aggregate.
CHECKOUT = (
    _FOLD
    + """
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
local keep = {}
local i = 2
for ms in string.gmatch(ARGV[4], '%d+') do
  keep[i] = tonumber(ms)
  i = i + 1
end
local asks = {}
local wanted = {}  -- set index -> {window ms -> true}: the aggregates asked for
for idx, window, metric in string.gmatch(ARGV[5], '(%d+) (%d+) (%a)') do
  idx = tonumber(idx)
  window = tonumber(window)
  asks[#asks + 1] = {idx, window, metric}
  if metric ~= 'n' then
    wanted[idx] = wanted[idx] or {}
    wanted[idx][window] = true
  end
end
local read = 0
for idx = 2, #KEYS do
  local set = KEYS[idx]
  local registry = set .. ':w'
  local asked = wanted[idx] or {}
  local windows = {}  -- the aggregates kept, window ms -> true when trusted
  local listed = redis.call('HGETALL', registry)
  for j = 1, #listed, 2 do
    local window = tonumber(listed[j])
    if asked[window] or tonumber(listed[j + 1]) >= now - window then
      windows[window] = true
    else
      redis.call('DEL', set .. ':w' .. listed[j])
      redis.call('HDEL', registry, listed[j])
    end
  end
  for window in pairs(asked) do
    if not windows[window] then
      windows[window] = false  -- not registered: (re)built below
    end
    redis.call('HSET', registry, window, now)
  end
  -- 1. Move every aggregate's edge to now - window.
  local retention = keep[idx]
  for window, trusted in pairs(windows) do
    local agg = set .. ':w' .. window
    local edge = now - window
    local e = trusted and redis.call('HGET', agg, 'e')
    if not e then
      redis.call('DEL', agg)
      redis.call('HSET', agg, 'e', edge, 'a', 0, 'q', 0, 'n', 0)
      read = read + fold(agg, redis.call('ZRANGEBYSCORE', set, '(' .. edge, '+inf'), 1)
    else
      e = tonumber(e)
      if edge > e then  -- members in (e, edge] left the window
        read = read + fold(agg, redis.call('ZRANGEBYSCORE', set, '(' .. e, edge), -1)
        redis.call('HSET', agg, 'e', edge)
      elseif edge < e then  -- the clock went back: (edge, e] are in it again
        read = read + fold(agg, redis.call('ZRANGEBYSCORE', set, '(' .. edge, e), 1)
        redis.call('HSET', agg, 'e', edge)
      end
    end
    if window > retention then retention = window end
  end
  -- 2. Add this checkout's member, to the set and to every aggregate.
  redis.call('ZADD', set, now, member)
  for window in pairs(windows) do
    if window > 0 then  -- its edge, now - window, is below the member's score
      read = read + fold(set .. ':w' .. window, {member}, 1)
    end
  end
  -- 3. Trim: the retention is at least every kept window, so what goes is at
  -- or below every edge already.
  redis.call('ZREMRANGEBYSCORE', set, '-inf', now - retention)
  redis.call('PEXPIRE', set, retention)
  redis.call('PEXPIRE', registry, retention)
  for window in pairs(windows) do
    redis.call('PEXPIRE', set .. ':w' .. window, retention)
  end
end
local fields = {a = 'a', q = 'q', r = 'n'}
local out = {epoch, read}
for _, ask in ipairs(asks) do
  local idx, window, metric = ask[1], ask[2], ask[3]
  if metric == 'n' then
    out[#out + 1] = redis.call('ZCOUNT', KEYS[idx], '(' .. (now - window), '+inf')
  else
    local agg = KEYS[idx] .. ':w' .. window
    out[#out + 1] = tonumber(redis.call('HGET', agg, fields[metric]))
  end
end
return out
"""
)

# KEYS the sets a checkout's member was added to, ARGV[1] the member. Removes
# it from each set and from each aggregate that holds it (its score above the
# aggregate's edge). Returns how many members it parsed.
RELEASE = (
    _FOLD
    + """
local member = ARGV[1]
local read = 0
for _, set in ipairs(KEYS) do
  local score = redis.call('ZSCORE', set, member)
  if score then
    score = tonumber(score)
    redis.call('ZREM', set, member)
    local listed = redis.call('HGETALL', set .. ':w')
    for j = 1, #listed, 2 do
      local agg = set .. ':w' .. listed[j]
      local e = redis.call('HGET', agg, 'e')
      if e and score > tonumber(e) then
        read = read + fold(agg, {member}, -1)
      end
    end
  end
end
return read
"""
)
