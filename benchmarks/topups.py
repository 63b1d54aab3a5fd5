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
import datetime as dt
import itertools
import math
import os
import resource
import secrets
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

import benchlib
import httpx

DB_NAME = "kaquan_bench_topups"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/3"
CELERY = str(benchlib.ROOT / ".venv" / "bin" / "celery")
SKU_CODE = "BENCH-TOPUP"
PRODUCT_ID = "P-TX-VIP-MONTH"  # the simulator's QQ top-up, price 24.00
UNIT_COST = Decimal("24.00")
PRICE = Decimal("28.00")
SIM_APP_KEY = "kaquan-bench"
SIM_BALANCE = "100000000.00"
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


# --- processes -------------------------------------------------------------------


class Managed:
    """A subprocess we start and stop ourselves (by pid, never by name)."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str]) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = benchlib.RESULTS / f"topups-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None  # noqa: S101
        return self.proc.pid

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=benchlib.ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except FileNotFoundError:
            return ""

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def stop(self, *, timeout: float = 30) -> None:
        benchlib.proc_stop(self.proc, timeout=timeout)


class SimulatorProcess(Managed):
    def __init__(self, *, env: dict[str, str], port: int, secret: str) -> None:
        super().__init__(
            "simulator",
            [
                benchlib.PYTHON,
                str(benchlib.ROOT / "manage.py"),
                "supplier_simulator",
                "--port",
                str(port),
                "--app-key",
                SIM_APP_KEY,
                "--secret",
                secret,
                "--balance",
                SIM_BALANCE,
            ],
            env=env,
        )
        self.base_url = f"http://127.0.0.1:{port}"
        self.secret = secret
        self.http = httpx.Client(base_url=f"{self.base_url}/_control", timeout=30)

    def start(self, *, timeout: float = 30) -> None:
        super().start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.exited():
                raise SystemExit(f"simulator exited:\n{self.log_tail()}")
            try:
                if self.http.get("/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise SystemExit(f"simulator did not answer within {timeout} s")

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        if body is None:
            response = self.http.get(path)
        else:
            response = self.http.post(path, json=body)
        response.raise_for_status()
        return response.json()

    def stop(self, *, timeout: float = 30) -> None:
        self.http.close()
        super().stop(timeout=timeout)


REUSE_WORKER = """
import sys
import django
from django.conf import settings
settings.CELERY_DB_REUSE_MAX = int(sys.argv.pop(1))
django.setup()
from config.celery import app
app.worker_main(sys.argv[1:])
"""


class WorkerProcess(Managed):
    """`celery -A config worker -Q celery,topups` with the given pool and concurrency."""

    def __init__(
        self, *, env: dict[str, str], pool: str, concurrency: int, db_reuse_max: int
    ) -> None:
        name = f"worker-{pool}{concurrency}"
        if db_reuse_max:
            # The same worker through Celery's API, with one setting added
            # (settings.py reads no environment variable for it).
            start = [benchlib.PYTHON, "-c", REUSE_WORKER, str(db_reuse_max)]
        else:
            start = [CELERY, "-A", "config"]
        super().__init__(
            name,
            [
                *start,
                "worker",
                "-Q",
                "celery,topups",
                "--pool",
                pool,
                "-c",
                str(concurrency),
                "--loglevel",
                "INFO",
                "-n",
                f"bench-{name}-{secrets.token_hex(3)}@%h",
            ],
            env=env,
        )

    def wait_ready(self, *, timeout: float = 60) -> float:
        """Seconds from start until the worker logs `ready.` (it consumes from then)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if " ready." in self.log_tail(20000):
                return time.monotonic() - t0
            if self.exited():
                break
            time.sleep(0.02)
        self.stop()
        raise SystemExit(f"worker did not start:\n{self.log_tail()}")


def redis_purge(url: str) -> dict[str, int]:
    """Empty our broker database's Celery queues; returns how many messages each held."""
    import redis

    client = redis.Redis.from_url(url)
    held = {q: int(client.llen(q)) for q in ("celery", "topups")}
    keys = [
        b"celery",
        b"topups",
        b"unacked",
        b"unacked_index",
        b"unacked_mutex",
        *client.scan_iter(match="_kombu.binding*"),
    ]
    client.delete(*keys)
    client.close()
    return held


# --- setup -----------------------------------------------------------------------


def seed(*, simulator: SimulatorProcess, users: int) -> list[Any]:
    """The top-up SKU, the supplier and its mapping (through the services), shoppers."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from catalog.models import Platform, Product, Sku
    from fulfillment.selectors import topup_capacity_by_sku
    from fulfillment.services import supplier_map, supplier_refresh, supplier_register

    platform = Platform.objects.create(
        name="腾讯视频", slug="tencent", account_rule=Platform.AccountRule.QQ
    )
    product = Product.objects.create(
        platform=platform, name="腾讯视频 VIP 直充", slug="bench-topup"
    )
    Sku.objects.create(
        product=product,
        code=SKU_CODE,
        name="月卡直充",
        delivery=Sku.Delivery.DIRECT_TOPUP,
        face_value=Decimal("30.00"),
        price=PRICE,
        max_per_order=5,
    )
    supplier = supplier_register(
        name="sim",
        base_url=simulator.base_url,
        app_key=SIM_APP_KEY,
        secret=simulator.secret,
    )
    mapping = supplier_map(
        sku_code=SKU_CODE, supplier_name="sim", product_id=PRODUCT_ID, cost=UNIT_COST
    )
    # Checkout sells a top-up only while a supplier can take it, as its last
    # refresh (beat, every 5 minutes) reported: refresh once, as beat would.
    supplier_refresh(supplier_id=supplier.pk)
    if not topup_capacity_by_sku(sku_ids=[mapping.sku_id]).get(mapping.sku_id):
        raise SystemExit(f"the simulator's refresh gave no capacity: {supplier}")
    User = get_user_model()
    unusable = make_password(None)
    return list(
        User.objects.bulk_create(
            User(username=f"topup{i}", email=f"topup{i}@example.com", password=unusable)
            for i in range(users)
        )
    )


def orders_place(users: list[Any], *, first_account: int) -> list[Any]:
    """One pending top-up order per user, through the checkout service (not timed)."""
    from orders.services import order_place

    return [
        order_place(
            user=user,
            sku_code=SKU_CODE,
            quantity=1,
            recharge_account=str(first_account + i),
        )
        for i, user in enumerate(users)
    ]


def notify(order: Any, trade_no: str) -> dict[str, str]:
    from orders.gateways import sandbox

    return sandbox.notify_fields(
        out_trade_no=order.number,
        trade_no=trade_no,
        amount=order.total_amount,
        status=sandbox.TRADE_SUCCESS,
    )


def pay_backlog(orders: list[Any], *, tag: str) -> float:
    """Pay through the notify service in this process; each commit queues its task."""
    from orders.services import payment_notify_handle

    t0 = time.perf_counter()
    for i, order in enumerate(orders):
        result = payment_notify_handle(
            gateway_name="sandbox", fields=notify(order, f"BENCH{tag}B{i}")
        )
        if result.outcome != "paid":
            raise SystemExit(f"paying {order.number}: {result.outcome}")
    return time.perf_counter() - t0


# --- measurement -----------------------------------------------------------------


def lines_delivered(order_ids: list[int]) -> int:
    from orders.models import OrderLine

    return OrderLine.objects.filter(
        order_id__in=order_ids, status=OrderLine.Status.DELIVERED
    ).count()


def wait_delivered(
    order_ids: list[int], *, timeout: float, worker: WorkerProcess
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lines_delivered(order_ids) == len(order_ids):
            return True
        if worker.exited():
            raise SystemExit(f"worker died:\n{worker.log_tail()}")
        time.sleep(0.05)
    return False


def timeline(order_ids: list[int]) -> list[dict[str, Any]]:
    """Per top-up: paid, claimed (attempt created), accepted, delivered, number."""
    from fulfillment.models import SupplierAttempt
    from orders.models import Payment

    paid = dict(
        Payment.objects.filter(order_id__in=order_ids).values_list(
            "order_id", "created_at"
        )
    )
    rows = []
    for a in SupplierAttempt.objects.filter(
        topup__order_line__order_id__in=order_ids
    ).select_related("topup__order_line"):
        line = a.topup.order_line
        rows.append(
            {
                "order_id": line.order_id,
                "number": a.customer_order_no,
                "paid": paid.get(line.order_id),
                "claimed": a.created_at,
                "placed": a.placed_at,
                "delivered": line.delivered_at,
                "steps": a.topup.steps,
            }
        )
    return rows


def _span(rows: list[dict[str, Any]], start: str, end: str) -> list[float]:
    return [
        (r[end] - r[start]).total_seconds()
        for r in rows
        if r[start] is not None and r[end] is not None
    ]


def verify(
    order_ids: list[int], report: dict[str, Any], rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """Our records and the supplier's books agree; nothing was bought twice."""
    from fulfillment.models import SupplierAttempt, TopUp, TopUpEvent
    from orders.models import Order, OrderLine

    n = len(order_ids)
    ours = {r["number"] for r in rows}
    placed = report["orders"]
    out: dict[str, Any] = {
        "topups": n,
        "attempts": len(rows),
        "supplier_orders": len(placed),
        "supplier_orders_ours": len(ours & set(placed)),
        "placed_more_than_once": sum(
            1 for o in placed.values() if o["placements"] != 1
        ),
        "supplier_not_success": sum(
            1 for o in placed.values() if o["state"] != "success"
        ),
        "unplaced": len(report.get("unplaced") or {}),
        "spent": report["totals"]["spent"],
        "lines_delivered": OrderLine.objects.filter(
            order_id__in=order_ids, status=OrderLine.Status.DELIVERED
        ).count(),
        "orders_delivered": Order.objects.filter(
            pk__in=order_ids, status=Order.Status.DELIVERED
        ).count(),
        "topups_succeeded": TopUp.objects.filter(
            order_line__order_id__in=order_ids, status=TopUp.Status.SUCCEEDED
        ).count(),
        "attempts_succeeded": SupplierAttempt.objects.filter(
            topup__order_line__order_id__in=order_ids,
            status=SupplierAttempt.Status.SUCCEEDED,
        ).count(),
        "refused_3002": TopUpEvent.objects.filter(response__code=3002).count(),
        "callbacks": len(report["callbacks"]),
        "callbacks_not_success": sum(
            1 for c in report["callbacks"] if not c["answered_success"]
        ),
        "callback_retries": sum(1 for c in report["callbacks"] if c["attempt"] > 1),
    }
    mismatched = 0
    attempts = {
        a.customer_order_no: a
        for a in SupplierAttempt.objects.filter(
            customer_order_no__in=list(placed)
        ).select_related("topup")
    }
    for number, order in placed.items():
        attempt = attempts.get(number)
        if attempt is None or (
            order["product_id"],
            order["charge_account"],
            order["buy_num"],
        ) != (
            attempt.product_id,
            attempt.topup.recharge_account,
            attempt.topup.quantity,
        ):
            mismatched += 1
    out["supplier_orders_not_as_recorded"] = mismatched
    problems = []
    expect_n = {
        "attempts": n,
        "supplier_orders": n,
        "supplier_orders_ours": n,
        "lines_delivered": n,
        "orders_delivered": n,
        "topups_succeeded": n,
        "attempts_succeeded": n,
        "callbacks": n,
    }
    for key, want in expect_n.items():
        if out[key] != want:
            problems.append(f"{key} {out[key]} != {want}")
    for key in (
        "placed_more_than_once",
        "supplier_not_success",
        "unplaced",
        "refused_3002",
        "callbacks_not_success",
        "supplier_orders_not_as_recorded",
    ):
        if out[key]:
            problems.append(f"{key} {out[key]}")
    if Decimal(out["spent"]) != UNIT_COST * n:
        problems.append(f"spent {out['spent']} != {UNIT_COST * n}")
    # The simulator stamps an order in whole seconds, just before it answers: our
    # acceptance time must fall in that second (or just after, across a boundary).
    skew = []
    for r in rows:
        sim = placed.get(r["number"])
        if sim and r["placed"] is not None:
            created = dt.datetime.fromisoformat(sim["created_at"])
            skew.append((r["placed"] - created).total_seconds())
    out["accepted_minus_supplier_created_s"] = [min(skew), max(skew)] if skew else None
    if skew and (min(skew) < -0.05 or max(skew) > 1.5):
        problems.append(f"supplier created_at vs our accept out of range: {skew[:3]}")
    out["ok"] = not problems
    out["problems"] = problems
    return out


def redis_server_pids() -> list[int]:
    """The Redis server (shared with everyone on this machine; our broker here)."""
    pids = []
    for pid in benchlib.descendants(1):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if fh.read().startswith(b"redis-server"):
                    pids.append(pid)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return pids


def pss_mib(pids: list[int]) -> float:
    """Proportional set size of processes: shared pages (a prefork pool's) counted once."""
    total_kib = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total_kib += int(line.split()[1])
                        break
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total_kib / 1024


def postmaster_reaped_cpu() -> float:
    """CPU seconds of the PostgreSQL server's exited children (cutime + cstime).

    Celery's Django fixup closes the database connection before and after every
    task, so a worker's backends live for one task and are gone before the end
    of a run: their CPU shows up only here (for every database on the server:
    during a quiet run, that is ours).
    """
    for pid in benchlib.descendants(1):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv0 = fh.read().split(b"\0", 1)[0]
            if not argv0.endswith(b"/bin/postgres"):
                continue
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
            continue
        return (int(fields[13]) + int(fields[14])) / benchlib.CLK_TCK
    return 0.0


def db_sessions(db: str) -> int:
    """Connections ever opened to the database (pg_stat_database, PostgreSQL 14+)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", [db])
        row = cur.fetchone()
    return int(row[0]) if row else 0


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


def callback_pace(report: dict[str, Any], numbers: set[str]) -> dict[str, float]:
    """How fast the simulator's callbacks for the drained top-ups went out.

    The simulator sends callbacks from one thread, one at a time; while a backlog
    waits, the gap between two sends is the time one callback takes.
    """
    sent = sorted(
        dt.datetime.fromisoformat(c["at"])
        for c in report["callbacks"]
        if c["customer_order_no"] in numbers
    )
    if len(sent) < 2:
        return {}
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(sent)]
    span = (sent[-1] - sent[0]).total_seconds()
    return {
        "per_s": (len(sent) - 1) / span if span else float("nan"),
        "gap_ms_p50": benchlib.median(gaps) * 1000,
    }


def pay_paced(orders: list[Any], *, rate: float, port: int, tag: str) -> int:
    """POST the signed notifies to gunicorn, one every 1/rate s (open loop)."""
    errors = 0
    interval = 1.0 / rate
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        start = time.monotonic()
        for i, order in enumerate(orders):
            delay = start + i * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            response = client.post(
                "/payments/notify/sandbox/", data=notify(order, f"BENCH{tag}P{i}")
            )
            if response.status_code != 200 or response.text.strip() != "success":
                errors += 1
    return errors


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


def print_report(report: dict[str, Any]) -> None:
    rows = []
    for r in report["runs"]:
        ms = r["cpu_ms_per_topup"]
        lat = r.get("latency", {})
        q = r["quiet"]
        rows.append(
            [
                r["latency_ms"],
                f"{r['pool']} -c {r['concurrency']}",
                r["n"],
                r["completed_per_s"],
                r["placed_per_s"],
                ms.get("worker", float("nan")),
                ms.get("gunicorn", float("nan")),
                ms.get("simulator", float("nan")),
                ms.get("postgres", 0.0) + ms.get("postgres_exited", 0.0),
                r["db_sessions_per_topup"],
                ms.get("redis", float("nan")),
                r.get("worker_pss_mib", float("nan")),
                r["latency_rate"],
                lat.get("paid_to_accepted", {}).get("p50", float("nan")),
                lat.get("paid_to_accepted", {}).get("p95", float("nan")),
                lat.get("paid_to_delivered", {}).get("p50", float("nan")),
                lat.get("paid_to_delivered", {}).get("p95", float("nan")),
                f"{q['loadavg'][0]:.2f}" if q.get("loadavg") else "-",
                f"{r['other_cpu_share']:.0%}",
                "ok" if r["verify"]["ok"] else "FAIL",
            ]
        )
    benchlib.print_table(
        f"Top-ups through the worker (gunicorn {report['server']}, broker Redis"
        + (
            f", CELERY_DB_REUSE_MAX={report['args']['db_reuse_max']})"
            if report["args"]["db_reuse_max"]
            else ")"
        ),
        [
            "supplier ms",
            "worker",
            "top-ups",
            "completed/s",
            "accepted/s",
            "worker CPU ms",
            "gunicorn CPU ms",
            "simulator CPU ms",
            "pg CPU ms",
            "connections/top-up",
            "redis CPU ms",
            "worker MiB",
            "notifies/s",
            "paid→accepted p50",
            "p95",
            "paid→delivered p50",
            "p95",
            "load before",
            "others' CPU",
            "checks",
        ],
        rows,
    )
    print(
        "\ncompleted/s: top-ups from the first claim to the last line delivered (by the"
        "\nsimulator's callback through gunicorn); accepted/s: to the last supplier accept."
        "\nCPU columns: CPU ms per top-up during the drain (Redis is shared with others;"
        "\npg: our live backends plus every backend that exited meanwhile, connections/top-up:"
        "\nconnections opened to the database per top-up)."
        "\nworker MiB: proportional set size of the worker and its pool. Latency columns (ms): top-ups"
        "\npaid one by one over HTTP at 'notifies/s', from the Payment row to the worker"
        "\nholding the supplier's accept, and to the line delivered."
    )


if __name__ == "__main__":
    main()
