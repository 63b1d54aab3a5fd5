"""Top-ups completed per second through a real Celery worker, against the supplier simulator.

    .venv/bin/python benchmarks/topups.py [--latencies 0,200] [--json]

Every piece is the real one, on 127.0.0.1:
- PostgreSQL: the database kaquan_bench_topups, recreated and migrated;
- Redis db 3 as the Celery broker (REDIS_URL, as in production);
- the supplier simulator as a subprocess (`manage.py supplier_simulator`), its
  latency and processing time set through its control API;
- gunicorn (`config.wsgi -w 4 -k sync`, the shipped setup) taking the payment
  notifies and the simulator's callbacks (SUPPLIER_CALLBACK_BASE_URL points at it);
- `celery -A config worker -Q celery,topups` as a subprocess, one per run, prefork
  with -c N or `--pool threads -c N`. No beat: a top-up is started by the task sent
  when its payment commits, and completed by the simulator's callback (the
  simulator settles an order `--processing-seconds` after creating it).

Per supplier latency and worker configuration (a "run"):
1. Reset the simulator and set its latency; place N + M top-up orders through
   `order_place`, and pay N of them through `payment_notify_handle` while no worker
   runs: N `topup_advance_task` messages wait in Redis.
2. Wait for a quiet machine, start the worker and time the drain: from the first
   claim (the first SupplierAttempt row) to the last supplier accept and to the
   last line delivered. CPU seconds of the worker, gunicorn, the simulator, Redis
   and PostgreSQL (our live backends, plus the exited ones: the worker reconnects
   for every task) are read from /proc, and new connections from pg_stat_database.
3. Latency: with the worker idle, pay the other M orders through
   POST /payments/notify/sandbox/ at a steady rate well below the drain rate, and
   time payment → supplier accepted → line delivered.
4. Check the supplier's books (the simulator's report) against ours: one order per
   top-up, each placed once, none refused or left unplaced, all succeeded, the
   money spent = unit cost × top-ups, every callback answered `success` at once;
   and ours: every line and order delivered, one attempt per top-up.
--db-reuse-max N runs the same worker with CELERY_DB_REUSE_MAX=N (an experiment).
docs/PERFORMANCE.md ("Top-ups through the worker") has the figures and how to read them.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import secrets
import sys
import time
from typing import Any

import benchlib
from topups_procs import (
    SimulatorProcess,
    WorkerProcess,
    db_sessions,
    postmaster_reaped_cpu,
    pss_mib,
    redis_purge,
    redis_server_pids,
)
from topups_records import (
    _span,
    callback_pace,
    lines_delivered,
    orders_place,
    pay_backlog,
    pay_paced,
    seed,
    timeline,
    verify,
    wait_delivered,
)
from topups_report import print_report

DB_NAME = "kaquan_bench_topups"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/3"
WARM_UP = 40  # top-ups through the whole path before the measured runs


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--latencies", default="0,200", help="supplier latencies in ms, comma-separated"
    )
    p.add_argument(
        "--workers",
        default="prefork:1,prefork:8,prefork:32,threads:32",
        help="worker configurations, comma-separated POOL:CONCURRENCY",
    )
    p.add_argument("--orders", type=int, default=300, help="top-ups drained per run")
    p.add_argument(
        "--orders-at",
        default="200:prefork:1=80",
        help="per-run overrides of --orders, comma-separated LATENCY:POOL:C=N",
    )
    p.add_argument(
        "--latency-orders",
        type=int,
        default=50,
        help="top-ups paid one by one over HTTP for the latency figures (per run)",
    )
    p.add_argument(
        "--latency-rate",
        type=float,
        default=5.0,
        help="notifies per second in the latency phase (capped at half the drain rate)",
    )
    p.add_argument(
        "--processing-seconds",
        type=float,
        default=0.05,
        help="how long the simulator takes to settle an order (then calls back)",
    )
    p.add_argument("--gunicorn-workers", type=int, default=4)
    p.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    p.add_argument("--db-name", default=DB_NAME)
    p.add_argument(
        "--drain-timeout", type=float, default=300.0, help="seconds per drain, at most"
    )
    p.add_argument(
        "--db-reuse-max",
        type=int,
        default=0,
        help="experiment: run the worker with CELERY_DB_REUSE_MAX=N (Celery's Django"
        " fixup then keeps a task's database connection for N tasks instead of closing"
        " it before and after every task); 0: the shipped configuration",
    )
    p.add_argument(
        "--wait-budget",
        type=float,
        default=2400.0,
        help="seconds this script may spend in all waits for a quiet machine together;"
        " once spent, runs start after one short check (the load is still recorded)",
    )
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="do not wait for a quiet machine (smoke runs only)",
    )
    p.add_argument(
        "--json", action="store_true", help="also write benchmarks/results/*.json"
    )
    args = p.parse_args()
    if not args.redis_url:
        # Eager tasks would run the supplier call inside the paying request: not
        # the configuration this benchmark measures.
        p.error("--redis-url is required: the top-ups go through a worker")
    return args


def runs_plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    overrides: dict[tuple[int, str, int], int] = {}
    for item in filter(None, args.orders_at.split(",")):
        key, _, n = item.partition("=")
        lat, pool, c = key.split(":")
        overrides[(int(lat), pool, int(c))] = int(n)
    plan = []
    for lat in (int(x) for x in args.latencies.split(",")):
        for item in args.workers.split(","):
            pool, _, c = item.partition(":")
            if pool not in ("prefork", "threads"):
                raise SystemExit(f"unknown pool {pool!r}")
            n = overrides.get((lat, pool, int(c)), args.orders)
            plan.append(
                {"latency_ms": lat, "pool": pool, "concurrency": int(c), "n": n}
            )
    return plan


# --- measurement -----------------------------------------------------------------


_waited = [0.0]


def quiet_wait(args: argparse.Namespace) -> dict[str, Any]:
    """benchlib.wait_for_load within what is left of --wait-budget."""
    seen = benchlib.wait_for_load(max_wait=max(0.0, args.wait_budget - _waited[0]))
    _waited[0] += seen["waited_s"]
    return seen


def cpu_groups(
    *,
    worker: WorkerProcess,
    gunicorn: benchlib.Gunicorn,
    sim: SimulatorProcess,
    db: str,
) -> dict[str, Any]:
    return {
        "worker": lambda: benchlib.descendants(worker.pid),
        "gunicorn": lambda: benchlib.descendants(gunicorn.pid),
        "simulator": lambda: [sim.pid],
        "postgres": lambda: benchlib.pg_backends(db),
        "redis": redis_server_pids,
    }


def run_one(
    run: dict[str, Any],
    *,
    args: argparse.Namespace,
    env: dict[str, str],
    users: list[Any],
    sim: SimulatorProcess,
    gunicorn: benchlib.Gunicorn,
    index: int,
    latency_orders: int,
    wait: bool,
    warm_up: bool = False,
) -> dict[str, Any]:
    from django.db import connection

    n, m = run["n"], latency_orders
    label = f"{run['latency_ms']} ms, {run['pool']} -c {run['concurrency']}"
    title = "warm-up" if warm_up else f"run {index}"
    print(f"\n== {title}: supplier latency {label}, {n} top-ups", flush=True)
    sim.control("/reset", {})
    sim.control(
        "/faults",
        {
            "latency_ms": run["latency_ms"],
            "processing_seconds": args.processing_seconds,
        },
    )
    orders = orders_place(users, first_account=100000000 + index * 100000)
    backlog, paced = orders[:n], orders[n : n + m]
    backlog_ids = [o.id for o in backlog]
    paced_ids = [o.id for o in paced]
    pay_s = pay_backlog(backlog, tag=str(index))
    connection.close()
    print(f"   {n} paid through the notify service in {pay_s:.1f} s", flush=True)

    quiet = quiet_wait(args) if wait else {"quiet": None}
    worker = WorkerProcess(
        env=env,
        pool=run["pool"],
        concurrency=run["concurrency"],
        db_reuse_max=args.db_reuse_max,
    )
    groups = cpu_groups(worker=worker, gunicorn=gunicorn, sim=sim, db=args.db_name)
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    sessions0 = db_sessions(args.db_name)
    worker.start()
    try:
        ready_s = worker.wait_ready()
        with benchlib.CpuMeter() as meter, benchlib.CpuAccount(groups) as account:
            reaped0 = postmaster_reaped_cpu()
            t0 = time.perf_counter()
            done = wait_delivered(
                backlog_ids, timeout=args.drain_timeout, worker=worker
            )
            wall = time.perf_counter() - t0
            reaped = postmaster_reaped_cpu() - reaped0
        sessions = db_sessions(args.db_name) - sessions0
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        worker_mib = pss_mib(benchlib.descendants(worker.pid))
        if not done:
            raise SystemExit(
                f"drain not done in {args.drain_timeout} s: "
                f"{lines_delivered(backlog_ids)}/{n}\n{worker.log_tail()}"
            )
        rows = timeline(backlog_ids)
        backlog_numbers = {r["number"] for r in rows}
        first_claim = min(r["claimed"] for r in rows)
        last_placed = max(r["placed"] for r in rows)
        last_delivered = max(r["delivered"] for r in rows)
        drain_s = (last_delivered - first_claim).total_seconds()
        placing_s = (last_placed - first_claim).total_seconds()
        bench_cpu = (usage1.ru_utime - usage0.ru_utime) + (
            usage1.ru_stime - usage0.ru_stime
        )
        ours = {**account.seconds, "postgres_exited": reaped, "bench": bench_cpu}
        ncpu = os.cpu_count() or 1
        result: dict[str, Any] = {
            **run,
            "label": label,
            "quiet": quiet,
            "db_reuse_max": args.db_reuse_max,
            "db_sessions_per_topup": sessions / n,
            "worker_ready_s": ready_s,
            "worker_pss_mib": worker_mib,
            "pay_backlog_s": pay_s,
            "drain_s": drain_s,
            "placing_s": placing_s,
            "completed_per_s": n / drain_s,
            "placed_per_s": n / placing_s if placing_s > 0 else float("nan"),
            "cpu_s": ours,
            "cpu_ms_per_topup": {k: v * 1000 / n for k, v in ours.items()},
            "system_cpu_busy": meter.busy,
            "system_cpu_steal": meter.steal,
            "other_cpu_share": max(
                0.0, meter.busy - meter.steal - sum(ours.values()) / (wall * ncpu)
            ),
            "drain_wait_s": wall,
            "backlog_latency_ms": {
                "claimed_to_accepted_p50": _ms(
                    benchlib.percentile(_span(rows, "claimed", "placed"), 50)
                ),
                "accepted_to_delivered_p50": _ms(
                    benchlib.percentile(_span(rows, "placed", "delivered"), 50)
                ),
                "accepted_to_delivered_p95": _ms(
                    benchlib.percentile(_span(rows, "placed", "delivered"), 95)
                ),
            },
            "steps_max": max(r["steps"] for r in rows),
        }
        print(f"   drain latencies: {result['backlog_latency_ms']}", flush=True)
        print(
            f"   drain: {result['completed_per_s']:.1f} top-ups/s completed, "
            f"{result['placed_per_s']:.1f}/s accepted by the supplier "
            f"(worker ready in {ready_s:.1f} s)",
            flush=True,
        )

        # Latency: steady notifies over HTTP, well below the drain rate.
        rate = min(args.latency_rate, result["placed_per_s"] / 2)
        result["latency_rate"] = rate
        if paced:
            result["latency_quiet"] = quiet_wait(args) if wait else {"quiet": None}
            result["notify_errors"] = pay_paced(
                paced, rate=rate, port=gunicorn.port, tag=str(index)
            )
            if not wait_delivered(paced_ids, timeout=120, worker=worker):
                raise SystemExit(
                    f"latency phase not done: {lines_delivered(paced_ids)}/{m}"
                )
            prow = timeline(paced_ids)
            result["latency"] = {
                name: {
                    "p50": _ms(benchlib.percentile(_span(prow, a, b), 50)),
                    "p95": _ms(benchlib.percentile(_span(prow, a, b), 95)),
                    "max": _ms(max(_span(prow, a, b), default=float("nan"))),
                }
                for name, (a, b) in {
                    "paid_to_claimed": ("paid", "claimed"),
                    "paid_to_accepted": ("paid", "placed"),
                    "paid_to_delivered": ("paid", "delivered"),
                }.items()
            }
            rows += prow
        time.sleep(0.5)  # the last callbacks' records reach the simulator's log
        report = sim.control("/report")
        result["verify"] = verify(backlog_ids + paced_ids, report, rows)
        result["callbacks"] = callback_pace(report, backlog_numbers)
        lat = result.get("latency", {}).get("paid_to_accepted", {})
        print(f"   callbacks for the drained top-ups: {result['callbacks']}")
        print(
            f"   latency at {rate:.1f}/s: paid → supplier accepted p50 "
            f"{lat.get('p50', float('nan')):.0f} ms, p95 {lat.get('p95', float('nan')):.0f} ms; "
            f"checks ok={result['verify']['ok']} {result['verify']['problems']}",
            flush=True,
        )
    finally:
        worker.stop()
        connection.close()
    return result


def _ms(seconds: float) -> float:
    return seconds * 1000 if not math.isnan(seconds) else float("nan")


# --- main ------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    plan = runs_plan(args)
    machine = benchlib.machine_info()
    print(f"machine: {machine}")
    sim_port, web_port = benchlib.free_port(), benchlib.free_port()
    while web_port == sim_port:
        web_port = benchlib.free_port()

    t_setup = time.perf_counter()
    held = redis_purge(args.redis_url)
    env = benchlib.fresh_django(
        db_name=args.db_name,
        redis_url=args.redis_url,
        collectstatic=True,
        extra_env={
            # The worker calls the simulator on loopback, which production refuses.
            "HTTP_ALLOW_PRIVATE_ADDRESSES": "true",
            "SUPPLIER_CALLBACK_BASE_URL": f"http://127.0.0.1:{web_port}",
        },
    )
    sim = SimulatorProcess(env=env, port=sim_port, secret=secrets.token_urlsafe(24))
    sim.start()
    gunicorn = benchlib.Gunicorn(
        env=env,
        port=web_port,
        workers=args.gunicorn_workers,
        worker_class="sync",
        log_path=benchlib.RESULTS / "gunicorn-topups.log",
    )
    per_run = max(r["n"] for r in plan) + args.latency_orders
    report: dict[str, Any] = {
        "machine": machine,
        "args": vars(args),
        "server": " ".join(gunicorn.command[1:6]),
        "redis_messages_purged_at_start": held,
        "runs": [],
    }
    try:
        users = seed(simulator=sim, users=per_run * len(plan) + WARM_UP)
        benchlib.django_close_connections()
        print(f"setup {time.perf_counter() - t_setup:.1f} s", flush=True)
        gunicorn.start()
        # Warm-up, not reported: gunicorn's workers import the URLconf and open
        # their connections on their first requests, the simulator its pool.
        warm = run_one(
            {"latency_ms": 0, "pool": "prefork", "concurrency": 4, "n": WARM_UP},
            args=args,
            env=env,
            users=users[-WARM_UP:],
            sim=sim,
            gunicorn=gunicorn,
            index=len(plan),
            latency_orders=0,
            wait=False,
            warm_up=True,
        )
        report["warm_up"] = {k: warm[k] for k in ("completed_per_s", "verify")}
        for index, run in enumerate(plan):
            chunk = users[index * per_run : index * per_run + per_run]
            report["runs"].append(
                run_one(
                    run,
                    args=args,
                    env=env,
                    users=chunk[: run["n"] + args.latency_orders],
                    sim=sim,
                    gunicorn=gunicorn,
                    index=index,
                    latency_orders=args.latency_orders,
                    wait=not args.no_wait,
                )
            )
    finally:
        gunicorn.stop()
        sim.stop()
        report["redis_messages_purged_at_end"] = redis_purge(args.redis_url)

    print_report(report)
    if args.json:
        print(f"\nwrote {benchlib.write_json('topups', report)}")
    failed = [r for r in report["runs"] if not r["verify"]["ok"]]
    print(f"\nverdict: {'FAIL' if failed else 'all checks passed'}")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
