"""topups.py's processes: the supplier simulator and the Celery worker we start and
stop ourselves, the broker purge, and the /proc and pg_stat gauges read around a run."""

from __future__ import annotations

import secrets
import subprocess
import time
from typing import Any

import benchlib
import httpx

CELERY = str(benchlib.ROOT / ".venv" / "bin" / "celery")
SIM_APP_KEY = "kaquan-bench"
SIM_BALANCE = "100000000.00"


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
