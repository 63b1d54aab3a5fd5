"""Load generator for checkout_paid_orders.py, run in its own process.

    python benchmarks/loadgen.py < spec.json > result.json

The spec's `mode` picks the workload:
- `app`: each client thread buys in a loop over HTTP (POST /checkout/, GET the sandbox
  pay page and read the order number from it, POST the signed notify) until the
  deadline or the order budget is reached; each shopper keeps the cookies the shop
  sets it and sends them with the checkout and the pay page, as a browser does
  (CookieJar; the notify, the gateway's call, carries none);
- `rush`: like `app`, but each attempt is a different shopper and there are far more
  attempts than codes; the sold-out answer is a 409 (a sold-out page, or the
  confirmation page with the error) or, in older code, a 302 back to the product page;
- `raw`: the same SQL work with psycopg2, one connection per client thread
  (loadgen_raw.py; the budget, tally and threads both share: loadgen_common.py).

Every loop is bounded by a deadline and a count, and every request has a timeout.
Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import queue
import random
import re
import resource
import secrets
import sys
import time
from collections import Counter
from typing import Any, NamedTuple
from urllib.parse import urlencode

from loadgen_common import Budget, Tally, _run_threads
from loadgen_raw import run_raw

ORDER_NUMBER_RE = re.compile(r'class="order-number">([^<]+)<')
REQUEST_TIMEOUT = 15.0
# What a request can fail with: the transport's errors, not an answer.
TRANSPORT_ERRORS = (OSError, http.client.HTTPException)


class Answer(NamedTuple):
    status_code: int
    headers: dict[str, str]  # names in lower case (the last one of a repeated name)
    text: str
    set_cookies: tuple[str, ...] = ()  # every Set-Cookie header, in order


class Http:
    """HTTP/1.1 to the server under test on the standard library's http.client.

    The driver shares the two cores with the server: with httpx it spent 4.1 ms
    of CPU per paid order (three requests; a fifth of the machine in a
    paid-orders run), against 1.3 ms per order for the raw path's psycopg2
    driver (docs/PERFORMANCE.md, "make bench after session 6's merges"). A connection is kept while the server keeps it (gunicorn's sync
    workers close it after each answer) and opened again when needed. Redirects
    are not followed; no cookie is kept here (callers keep theirs: CookieJar).
    """

    def __init__(self, port: int, timeout: float) -> None:
        self.port, self.timeout = port, timeout
        self.conn: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(
        self,
        method: str,
        path: str,
        *,
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(
                "127.0.0.1", self.port, timeout=self.timeout
            )
        sent = dict(headers or {})
        body = None
        if data is not None:
            body = urlencode(data).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.conn.request(method, path, body=body, headers=sent)
            response = self.conn.getresponse()
            text = response.read().decode("utf-8", "replace")
        except TRANSPORT_ERRORS:
            self.close()
            raise
        pairs = response.getheaders()
        answer = Answer(
            response.status,
            {k.lower(): v for k, v in pairs},
            text,
            tuple(v for k, v in pairs if k.lower() == "set-cookie"),
        )
        if response.will_close:
            self.close()
        return answer


def sign(fields: dict[str, str], secret: str) -> str:
    """SPEC 4.5: lowercase hex HMAC-SHA256 over the other fields sorted by name as k=v&..."""
    message = "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "sign")
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


class CookieJar:
    """What a browser keeps of the shop's cookies, as far as the benchmark needs it.

    name=value from each Set-Cookie the shop sends, replaced by a later one of the
    same name and dropped by `Max-Age=0` (Django's delete_cookie); sent back as one
    Cookie header on the shop's later requests. Every cookie the shop sets has
    Path=/ and no Domain, so path and domain matching are left out. Secure cookies
    are sent too: the benchmark speaks plain HTTP to 127.0.0.1, which browsers
    treat as a secure origin, and a shopper reaches the shop over HTTPS.
    Expiry dates are not read (a run lasts seconds; the cookies live a year).
    """

    def __init__(self, initial: dict[str, str]) -> None:
        self.values = dict(initial)

    def header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.values.items())

    def keep(self, answer: Answer) -> None:
        for name, value, attributes in set_cookie_pairs(answer):
            if "max-age=0" in attributes:
                self.values.pop(name, None)
            else:
                self.values[name] = value


def set_cookie_pairs(answer: Answer) -> list[tuple[str, str, set[str]]]:
    """(name, value, attributes in lower case without spaces) of each Set-Cookie."""
    found = []
    for line in answer.set_cookies:
        pair, *attributes = line.split(";")
        name, eq, value = pair.partition("=")
        if eq and name.strip():
            found.append(
                (
                    name.strip(),
                    value.strip(),
                    {a.replace(" ", "").lower() for a in attributes},
                )
            )
    return found


class Shopper:
    """One keep-alive HTTP client buying as one or more sessions (shoppers).

    Each session is a browser: its cookies (the session and CSRF cookies it was
    logged in with, then whatever the shop sets it, such as the device cookie)
    go with its checkout and with the pay page the checkout redirects to, as a
    browser following a same-origin redirect sends them. The notify is the
    gateway's server-to-server call and carries none. spec["cookie_jar"] false:
    the driver before session 8 (the checkout sends only the session and CSRF
    cookies, the pay page none, nothing the shop sets is kept), to compare.
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.base = f"http://127.0.0.1:{spec['port']}"
        self.client = Http(spec["port"], REQUEST_TIMEOUT)
        self.csrf = secrets.token_hex(16)  # 32 alphanumeric characters
        self.keep_cookies = bool(spec.get("cookie_jar", True))
        self.jars: dict[str, CookieJar] = {}
        self.cookies_set: Counter[str] = Counter()

    def close(self) -> None:
        self.client.close()

    def _jar(self, session_key: str) -> CookieJar:
        jar = self.jars.get(session_key)
        if jar is None or not self.keep_cookies:
            jar = CookieJar({"sessionid": session_key, "csrftoken": self.csrf})
            self.jars[session_key] = jar
        return jar

    def _took(self, jar: CookieJar, answer: Answer, step: str) -> None:
        for name, _, _ in set_cookie_pairs(answer):
            self.cookies_set[f"{step} {name}"] += 1
        if self.keep_cookies:
            jar.keep(answer)

    def _forwarded(self) -> dict[str, str]:
        """spec["spread_ips"]: each checkout from its own address, as many shoppers
        are (the server trusts 127.0.0.1 as its proxy: TRUSTED_PROXIES)."""
        if not self.spec.get("spread_ips"):
            return {}
        octets = ".".join(str(random.randint(0, 255)) for _ in range(3))
        return {"X-Forwarded-For": f"10.{octets}"}

    def buy(self, session_key: str) -> tuple[str, dict[str, float], str]:
        """One paid order. Returns (outcome, step timings, error text)."""
        steps: dict[str, float] = {}
        jar = self._jar(session_key)
        t0 = time.perf_counter()
        r = self.client.request(
            "POST",
            "/checkout/",
            data={
                "sku": self.spec["sku"],
                "quantity": "1",
                "token": secrets.token_urlsafe(16),
            },
            headers={
                "Cookie": jar.header(),
                "X-CSRFToken": self.csrf,
                "Referer": self.base + "/",
                **self._forwarded(),
            },
        )
        t1 = time.perf_counter()
        steps["checkout"] = t1 - t0
        self._took(jar, r, "checkout")
        location = r.headers.get("location", "")
        # Sold out: a 409 (quantity is 1, so nothing else answers 409 here), or, in
        # older code, a redirect back to the product page.
        if r.status_code == 409 or (
            r.status_code == 302 and location.startswith("/p/")
        ):
            return "sold_out", steps, ""
        if r.status_code != 302 or not location.startswith("/pay/sandbox/"):
            return (
                f"checkout_{r.status_code}",
                steps,
                f"checkout {r.status_code} {location} {r.text[:200]}",
            )

        r = self.client.request(
            "GET",
            location,
            headers={"Cookie": jar.header()} if self.keep_cookies else None,
        )
        t2 = time.perf_counter()
        steps["pay_page"] = t2 - t1
        self._took(jar, r, "pay_page")
        numbers = ORDER_NUMBER_RE.findall(r.text)
        if r.status_code != 200 or len(numbers) < 2:
            return (
                f"pay_page_{r.status_code}",
                steps,
                f"pay page {r.status_code} {r.text[:200]}",
            )
        out_trade_no, trade_no = numbers[0].strip(), numbers[1].strip()

        fields = {
            "out_trade_no": out_trade_no,
            "trade_no": trade_no,
            "total_amount": self.spec["price"],
            "trade_status": "TRADE_SUCCESS",
            "notify_id": secrets.token_hex(16),
        }
        fields["sign"] = sign(fields, self.spec["secret"])
        # The gateway's call: no shopper's cookie, and nothing it is set is kept.
        r = self.client.request("POST", "/payments/notify/sandbox/", data=fields)
        t3 = time.perf_counter()
        steps["notify"] = t3 - t2
        for name, _, _ in set_cookie_pairs(r):
            self.cookies_set[f"notify {name}"] += 1
        if r.status_code != 200 or r.text.strip() != "success":
            return (
                f"notify_{r.status_code}",
                steps,
                f"notify {r.status_code} {r.text[:200]}",
            )
        return "paid", steps, ""


def run_app(spec: dict[str, Any], tally: Tally) -> None:
    budget = Budget(limit=spec["max_orders"], seconds=spec["duration"])

    def client(session_key: str) -> None:
        shopper = Shopper(spec)
        try:
            while budget.take():
                t0 = time.perf_counter()
                try:
                    outcome, steps, error = shopper.buy(session_key)
                except TRANSPORT_ERRORS as exc:
                    tally.add("transport_error", error=repr(exc))
                    continue
                latency = time.perf_counter() - t0 if outcome == "paid" else None
                tally.add(outcome, latency=latency, steps=steps, error=error)
        finally:
            shopper.close()
            with tally.lock:
                tally.cookies_set.update(shopper.cookies_set)

    _run_threads([(client, (key,)) for key in spec["sessions"]])


def run_rush(spec: dict[str, Any], tally: Tally) -> None:
    """Each attempt is a different shopper; the deadline bounds the whole rush."""
    attempts: queue.SimpleQueue[str] = queue.SimpleQueue()
    for key in spec["sessions"]:
        attempts.put(key)
    deadline = time.monotonic() + spec["duration"]

    def client() -> None:
        shopper = Shopper(spec)
        try:
            while time.monotonic() < deadline:
                try:
                    key = attempts.get_nowait()
                except queue.Empty:
                    return
                t0 = time.perf_counter()
                try:
                    outcome, steps, error = shopper.buy(key)
                except TRANSPORT_ERRORS as exc:
                    tally.add("transport_error", error=repr(exc))
                    continue
                tally.add(
                    outcome, latency=time.perf_counter() - t0, steps=steps, error=error
                )
                shopper.jars.pop(key, None)  # each buyer tries once
        finally:
            shopper.close()
            with tally.lock:
                tally.cookies_set.update(shopper.cookies_set)

    _run_threads([(client, ()) for _ in range(spec["concurrency"])])


def _pct(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def main() -> None:
    spec = json.load(sys.stdin)
    tally = Tally()
    runner = {"app": run_app, "rush": run_rush, "raw": run_raw}[spec["mode"]]
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    runner(spec, tally)
    elapsed = time.perf_counter() - t0
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    paid = tally.outcomes.get("paid", 0)
    result = {
        "mode": spec["mode"],
        "clients": len(spec.get("sessions") or spec.get("user_ids") or [])
        if spec["mode"] != "rush"
        else spec["concurrency"],
        "elapsed_s": elapsed,
        "outcomes": dict(tally.outcomes),
        "paid": paid,
        "paid_per_s": paid / elapsed if elapsed else 0.0,
        "latency_p50_ms": _ms(_pct(tally.latencies, 50)),
        "latency_p99_ms": _ms(_pct(tally.latencies, 99)),
        "step_p50_ms": {k: _ms(_pct(v, 50)) for k, v in tally.steps.items()},
        "step_p99_ms": {k: _ms(_pct(v, 99)) for k, v in tally.steps.items()},
        "loadgen_cpu_s": cpu,
        "backend_cpu_s": tally.backend_cpu,
        "cookie_jar": bool(spec.get("cookie_jar", True)),
        "cookies_set": dict(tally.cookies_set),
        "first_errors": tally.first_errors,
    }
    json.dump(result, sys.stdout)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


if __name__ == "__main__":
    main()
