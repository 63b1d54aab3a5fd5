"""The rush driven by wrk, the load generator the floor is measured with.

    rush = rush_wrk.run(port=..., sku=..., sessions=[...], connections=64, ...)

The Python load generator (loadgen.py) spends about 1.7 ms of CPU per checkout
POST on this 2-core machine, as much as the server's sold-out answer: measured
against a floor driven by wrk, a rush driven by it mostly measures itself. Here
wrk (-t1, `connections` keep-alive connections) sends checkout POSTs buyer after
buyer, each as that buyer (session and CSRF cookies, a fresh checkout token);
once every buyer has tried, they try again, as shoppers in a rush do. A Lua
script tallies the answers: 302 to the gateway (an order placed), 409 (sold
out), anything else. Then, outside the measured window, every placed order is
paid through its signed sandbox notify, so the database checks are the same as
the Python rush's: exactly the stock sold and paid, no code twice, nothing left
reserved. Attempts per second and the checkout POST's latency are wrk's, over
the whole run.

How long: at least `seconds` (the floor's runs' length) and until every buyer
has been answered once (answers counted reach the buyers), whichever is later,
but never beyond `max_seconds`. A machine that answers fewer than buyers/seconds
attempts per second still answers them all (this morning's 518/s left 2,175 of
10,000 unanswered in a fixed 15 s). wrk runs with -d `max_seconds`; the Lua
script creates a marker file on the answer that completes the buyers, and this
process, once `seconds` have passed and the marker is there, sends wrk SIGINT,
which ends wrk's run as its own clock does (the threads stop, the summary and
done() report the time actually run). `wrk.thread:stop()` from Lua would stop
the requests but not wrk's main thread, which sleeps the whole -d and reports
that as the duration (wrk 4.1.0): attempts/s would be understated.

No device cookie (risk/device.py): each buyer's checkout has the server sign a
new one, as for a shopper whose first request is the buy. A real rush buyer
has usually loaded the product page and brings the cookie it was given; the
server then verifies it instead, and does so once per worker for each buyer
(10,000 different cookies; a cookie verified is remembered per process), which
costs about as much as issuing one (in-process, a sold-out POST: 1,953 Python
calls with a new valid cookie, 2,005 with none). wrk cannot keep a cookie per buyer (its
response() does not say which request it answers); giving each buyer one up
front would tie this script to the app's signing salt. See docs/PERFORMANCE.md,
"Paid path, session 8 ...: the load generator keeps its cookies".
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib
import httpx
import psycopg2
from loadgen import sign

LUA = r"""
local buyers, sent, answered, total = {}, 0, 0, 0
local counts = {}
local sku, csrf
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local marker, marked

function init(args)
  sku, csrf, marker = args[2], args[3], args[4]
  for line in io.lines(args[1]) do
    local key, token = line:match("(%S+) (%S+)")
    buyers[#buyers + 1] = {key, token}
  end
  total = #buyers
end

function request()
  -- Buyer after buyer; once all have tried, they click again (a new checkout
  -- token each round), as shoppers in a rush do.
  local b = buyers[(sent % total) + 1]
  local round = math.floor(sent / total)
  sent = sent + 1
  local body = "sku=" .. sku .. "&quantity=1&token=" .. b[2] .. "-" .. round
  return wrk.format("POST", "/checkout/", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Cookie"] = "sessionid=" .. b[1] .. "; csrftoken=" .. csrf,
    ["X-CSRFToken"] = csrf,
    ["Referer"] = "http://127.0.0.1/",
  }, body)
end

function response(status, headers, body)
  answered = answered + 1
  local key = tostring(status)
  if status == 302 then
    local loc = headers["Location"] or headers["location"] or ""
    if loc:find("^/pay/sandbox/") then key = "placed" else key = "302 " .. loc end
  elseif status == 409 then
    key = "sold_out"
  end
  counts[key] = (counts[key] or 0) + 1
  local parts = {}
  for k, v in pairs(counts) do parts[#parts + 1] = string.format("%q:%d", k, v) end
  tally = "{" .. table.concat(parts, ",") .. "}"
  done_answers = answered
  buyers_total = total
  if not marked and answered >= total then
    -- every buyer answered: the driver stops wrk once the minimum time is over
    marked = true
    local f = io.open(marker, "w")
    if f then f:close() end
  end
end

function done(summary, latency, requests)
  local t = threads[1]
  io.write(string.format(
    'RUSH {"answered":%d,"buyers":%d,"tally":%s,"requests":%d,"duration_s":%.3f,' ..
    '"p50_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"socket_errors":%d}\n',
    t:get("done_answers") or 0, t:get("buyers_total") or 0, t:get("tally") or "{}",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout))
end
"""


def run(
    *,
    port: int,
    sku: str,
    sessions: list[str],
    connections: int,
    secret: str,
    price: str,
    dsn: str,
    sku_id: int,
    server_pid: int,
    db_name: str,
    seconds: int = 15,
    max_seconds: int = 300,
) -> dict[str, Any]:
    """The rush; returns a result shaped like loadgen.py's rush (outcomes, steps).

    It lasts at least `seconds` and until every buyer has been answered once,
    at most `max_seconds` (then the every-buyer check fails, as it should)."""
    csrf = secrets.token_hex(16)
    max_seconds = max(max_seconds, seconds)
    with tempfile.TemporaryDirectory(prefix="kaquan-rush-") as tmp:
        script = Path(tmp) / "rush.lua"
        script.write_text(LUA, encoding="utf-8")
        marker = Path(tmp) / "all-answered"
        buyers = Path(tmp) / "buyers.txt"
        buyers.write_text(
            "".join(f"{key} {secrets.token_urlsafe(16)}\n" for key in sessions),
            encoding="utf-8",
        )
        groups: dict[str, Any] = {
            "postgres": lambda: benchlib.pg_backends(db_name),
            "gunicorn": lambda: benchlib.descendants(server_pid),
        }
        quiet = benchlib.wait_for_quiet()
        with benchlib.CpuMeter() as cpu, benchlib.CpuAccount(groups) as account:
            t0 = time.perf_counter()
            returncode, stdout, stderr, stopped = _wrk_until_answered(
                [
                    "wrk",
                    "-t1",
                    f"-c{connections}",
                    f"-d{max_seconds}s",
                    "--timeout",
                    "10s",
                    "-s",
                    str(script),
                    f"http://127.0.0.1:{port}/",
                    "--",
                    str(buyers),
                    sku,
                    csrf,
                    str(marker),
                ],
                marker=marker,
                seconds=seconds,
                max_seconds=max_seconds,
            )
            elapsed = time.perf_counter() - t0
    line = next((x for x in stdout.splitlines() if x.startswith("RUSH ")), None)
    if returncode != 0 or line is None:
        raise SystemExit(f"wrk rush failed ({returncode}):\n{stdout}\n{stderr}")
    w = json.loads(line[5:])
    tally: dict[str, int] = w["tally"]
    placed = tally.pop("placed", 0)
    paid, pay_errors = _pay_placed(
        port=port, dsn=dsn, sku_id=sku_id, secret=secret, price=price
    )
    outcomes = {**tally}
    if paid:
        outcomes["paid"] = paid
    if placed != paid:
        outcomes["placed_not_paid"] = placed - paid
    if w["socket_errors"]:
        outcomes["socket_error"] = w["socket_errors"]
    ours = {
        "gunicorn": account.seconds.get("gunicorn", 0.0),
        "postgres": account.seconds.get("postgres", 0.0),
    }
    answered = w["answered"]
    return {
        "mode": "rush",
        "driver": "wrk",
        "clients": connections,
        "seconds": seconds,
        "max_seconds": max_seconds,
        "stopped": stopped,
        "elapsed_s": w["duration_s"],
        "requests": w["requests"],
        "buyers": w["buyers"],
        "outcomes": outcomes,
        "paid": paid,
        "first_errors": pay_errors[:10],
        "step_p50_ms": {"checkout": w["p50_ms"]},
        "step_p99_ms": {"checkout": w["p99_ms"]},
        "checkout_max_ms": w["max_ms"],
        "busy_before": quiet,
        "system_cpu_busy": cpu.busy,
        "system_cpu_steal": cpu.steal,
        "cpu_s": ours,
        "server_cpu_ms_per_attempt": (ours["gunicorn"] + ours["postgres"])
        * 1000
        / max(answered, 1),
        "other_cpu_share": max(
            0.0, cpu.busy - cpu.steal - sum(ours.values()) / (elapsed * 2)
        ),
    }


def _wrk_until_answered(
    cmd: list[str], *, marker: Path, seconds: float, max_seconds: float
) -> tuple[int, str, str, str]:
    """Run wrk until `seconds` have passed and the marker exists (every buyer
    answered), then SIGINT it; wrk's own -d (max_seconds) bounds it otherwise.
    Returns (exit code, stdout, stderr, why it stopped)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        t0 = time.monotonic()
        stopped = "upper bound"
        try:
            while proc.poll() is None:
                ran = time.monotonic() - t0
                if ran >= seconds and marker.exists():
                    proc.send_signal(signal.SIGINT)
                    stopped = "every buyer answered"
                    break
                if ran > max_seconds + 120:
                    break  # wrk did not stop by itself: the kill below
                time.sleep(0.02)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stopped = "killed"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                stopped = "killed"
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read(), err.read(), stopped


def _pay_placed(
    *, port: int, dsn: str, sku_id: int, secret: str, price: str
) -> tuple[int, list[str]]:
    """Pay every order the rush placed, through its signed sandbox notify."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT t.out_trade_no, t.trade_no FROM orders_sandboxtrade t "
                "JOIN orders_order o ON o.number = t.out_trade_no "
                "JOIN orders_orderline l ON l.order_id = o.id "
                "WHERE l.sku_id = %s AND o.status = 'pending' AND t.status = 'waiting'",
                [sku_id],
            )
            trades = cur.fetchall()
    finally:
        conn.close()
    paid, errors = 0, []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for out_trade_no, trade_no in trades:
            fields = {
                "out_trade_no": out_trade_no,
                "trade_no": trade_no,
                "total_amount": price,
                "trade_status": "TRADE_SUCCESS",
                "notify_id": secrets.token_hex(16),
            }
            fields["sign"] = sign(fields, secret)
            r = client.post("/payments/notify/sandbox/", data=fields)
            if r.status_code == 200 and r.text.strip() == "success":
                paid += 1
            else:
                errors.append(f"notify {r.status_code} {r.text[:200]}")
    return paid, errors
