"""A real Celery worker in its own process, on Redis and the pytest test database.

`WorkerProcess` runs `celery -A config worker -Q celery,topups --pool=solo` with
DATABASE_URL naming the database pytest created, the broker in REDIS_URL, and the
test's settings as environment variables (config/settings.py reads them all:
SUPPLIER_CALLBACK_BASE_URL, TOPUP_LEASE_SECONDS...). It waits until the worker
says it is ready, and stops it (SIGTERM, warm shutdown) or kills it (SIGKILL: no
ack, no cleanup, a lease left held).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

READY_TIMEOUT = 30.0
ROOT = Path(__file__).resolve().parents[3]


def database_url(settings_dict: dict[str, Any]) -> str:
    """The URL of the database Django uses right now (pytest's test database)."""
    user = settings_dict.get("USER") or ""
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"


class WorkerProcess:
    """One `celery worker` subprocess consuming the `celery` and `topups` queues."""

    def __init__(self, *, env: dict[str, str], log_dir: Path, name: str) -> None:
        self.env = env
        self.hostname = f"{name}-{uuid.uuid4().hex[:6]}@it"
        self.log_path = log_dir / f"{self.hostname.split('@')[0]}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> WorkerProcess:
        argv = [
            *(sys.executable, "-m", "celery", "-A", "config", "worker"),
            "--queues=celery,topups",
            "--pool=solo",
            "--loglevel=INFO",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            f"--hostname={self.hostname}",
        ]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 (our own interpreter)
                argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and self.proc.poll() is None:
            if " ready." in self.log_tail(4000):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"worker did not start:\n{self.log_tail()}")

    def log_tail(self, size: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        """SIGKILL: the worker dies mid-task, acking nothing and releasing nothing."""
        assert self.proc is not None
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM); killed if it has not ended in 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
