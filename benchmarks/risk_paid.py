"""The risk engine's cost on the paid path, over HTTP: 0 and 20 rules, Redis and
database counters, in one run.

    .venv/bin/python benchmarks/risk_paid.py [--duration 15] [--clients 8] [--rounds 1] [--json]

Runs benchmarks/checkout_paid_orders.py four times (fresh database, gunicorn -w 4,
8 clients buying card codes: checkout POST -> pay page -> signed notify, each
checkout from its own address as a shop's many shoppers are), in the
order 0/redis, 20/redis, 0/db, 20/db, and prints paid orders/s, the checkout POST's
median latency and the server's CPU per order (gunicorn + PostgreSQL) for each,
with the overhead of 20 rules against 0 on the same counters; the redis-server's
own CPU per order beside it (where the counters' Lua script runs: the whole
server, so other users of it on the machine count too). With `--rounds N` the four cases run N
times, every other round in the reverse order (so that no case always runs
first or after the same neighbour), and the overhead is the median of the
per-round differences. Every run checks what it sold (the
benchmark's own verification). The in-process cost of one assessment is
benchmarks/risk_overhead.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import benchlib

HERE = Path(__file__).resolve().parent
CASES = [(0, "redis"), (20, "redis"), (0, "db"), (20, "db")]


def run(rules: int, counters: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(
            [
                sys.executable,
                str(HERE / "checkout_paid_orders.py"),
                "--concurrency",
                str(args.clients),
                "--duration",
                str(args.duration),
                "--stock-test",
                "0",
                "--skip-raw",
                "--skip-rush",
                "--spread-ips",
                "--risk-rules",
                str(rules),
                "--risk-counters",
                counters,
                "--json-path",
                out.name,
            ],
            check=True,
            cwd=benchlib.ROOT,
        )
        report = json.loads(Path(out.name).read_text())
    app = report["app"][0]
    return {
        "rules": rules,
        "counters": counters,
        "paid_per_s": app["paid_per_s"],
        "checkout_p50_ms": app["step_p50_ms"].get("checkout"),
        "server_cpu_ms_per_order": app.get("server_cpu_ms_per_order"),
        "redis_cpu_ms_per_order": app.get("cpu_ms_per_order", {}).get("redis", 0.0),
        "verify_ok": app["verify"]["ok"],
        "raw": app,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument(
        "--rounds", type=int, default=1, help="odd rounds run the cases in reverse"
    )
    p.add_argument("--json", action="store_true", help="write benchmarks/results/")
    args = p.parse_args()
    print(f"machine: {benchlib.machine_info()}")
    rows = []
    for round_no in range(args.rounds):
        cases = CASES if round_no % 2 == 0 else CASES[::-1]
        for rules, counters in cases:
            rows.append({"round": round_no + 1, **run(rules, counters, args)})
    print()
    print(
        "| round | rules | counters | paid orders/s | checkout p50 ms "
        "| server CPU ms/order | redis-server CPU ms/order | checked |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['round']} | {r['rules']} | {r['counters']} | {r['paid_per_s']:.1f} | "
            f"{_fmt(r['checkout_p50_ms'])} | {_fmt(r['server_cpu_ms_per_order'])} | "
            f"{_fmt(r['redis_cpu_ms_per_order'])} | {'ok' if r['verify_ok'] else 'FAIL'} |"
        )
    for counters in ("redis", "db"):
        extras = []
        redis_extras = []
        for round_no in range(1, args.rounds + 1):
            base, full = (
                next(
                    r
                    for r in rows
                    if r["round"] == round_no
                    and r["rules"] == n
                    and r["counters"] == counters
                )
                for n in (0, 20)
            )
            if base["server_cpu_ms_per_order"] and full["server_cpu_ms_per_order"]:
                extras.append(
                    full["server_cpu_ms_per_order"] - base["server_cpu_ms_per_order"]
                )
                redis_extras.append(
                    full["redis_cpu_ms_per_order"] - base["redis_cpu_ms_per_order"]
                )
        if extras:
            each = ", ".join(f"{e:+.2f}" for e in extras)
            print(
                f"20 rules over 0 ({counters}): {statistics.median(extras):+.2f} ms "
                f"server CPU per order (median of rounds: {each}); redis-server "
                f"{statistics.median(redis_extras):+.2f} ms "
                f"({', '.join(f'{e:+.2f}' for e in redis_extras)})"
            )
    if args.json:
        benchlib.RESULTS.mkdir(exist_ok=True)
        path = benchlib.RESULTS / "risk_paid.json"
        path.write_text(json.dumps(rows, indent=2, default=str))
        print(f"wrote {path}")
    if not all(r["verify_ok"] for r in rows):
        raise SystemExit("a run's verification failed")


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
