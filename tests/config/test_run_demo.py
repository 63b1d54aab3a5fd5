"""make run: the filesystem broker, a real worker on it, and scripts/run_demo.py.

Everything here runs real processes on loopback with a clean environment: no
REDIS_URL, a temporary broker folder and database, free ports.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from django.db import connection
from django.utils import timezone

from config.celery import app as celery_app
from fulfillment.models import CardCode
from tests.factories.catalog import SkuFactory
from tests.factories.fulfillment import stock_codes

ROOT = Path(__file__).resolve().parents[2]
# What a developer's shell or the test run may set that would change the demo.
DEMO_UNSET = {
    "REDIS_URL",
    "DATABASE_URL",
    "DEBUG",
    "CELERY_BROKER_DIR",
    "CELERY_TASK_ALWAYS_EAGER",
    "CELERY_BEAT_SCHEDULE_FILENAME",
    "PORT",
    "SIMULATOR_PORT",
}
SETTINGS_PROBE = """
import json
from django.conf import settings as s
print(json.dumps({
    "broker": s.CELERY_BROKER_URL,
    "eager": s.CELERY_TASK_ALWAYS_EAGER,
    "transport": s.CELERY_BROKER_TRANSPORT_OPTIONS,
    "beat_schedule": s.CELERY_BEAT_SCHEDULE_FILENAME,
    "db_options": s.DATABASES["default"].get("OPTIONS", {}),
}))
"""


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in DEMO_UNSET}
    return {
        **env,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def _settings(**env: str) -> dict:
    result = subprocess.run(  # noqa: S603 (our own probe)
        [sys.executable, "-c", SETTINGS_PROBE],
        cwd=ROOT,
        env=_clean_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(predicate: Callable[[], object], seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _live_processes(pgids: set[int]) -> list[str]:
    """Processes (zombies aside) still in any of these process groups (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # exited while we looked
            continue
        state, _ppid, pgrp = text[text.rindex(")") + 2 :].split()[:3]
        if int(pgrp) in pgids and state != "Z":
            found.append(text[: text.rindex(")") + 1])
    return found


class Captured:
    """A process whose merged output is collected line by line in a thread."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 (the test's own argv)
            argv,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def matching(self, pattern: str) -> list[str]:
        return [line for line in list(self.lines) if re.search(pattern, line)]

    def has_line(self, pattern: str) -> bool:
        return bool(self.matching(pattern))

    def finish(self, timeout: float = 30) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def kill_group(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


# --- Settings ------------------------------------------------------------------


def test_settings_without_redis_use_filesystem_broker_and_are_not_eager(tmp_path):
    broker = tmp_path / "broker"

    found = _settings(CELERY_BROKER_DIR=str(broker))

    assert found["broker"].startswith("filesystem://")
    assert found["eager"] is False
    transport = found["transport"]
    assert transport["data_folder_in"] == transport["data_folder_out"]
    assert transport["data_folder_in"] == str(broker / "queue")
    assert transport["processed_folder"] == str(broker / "processed")
    assert transport["control_folder"] == str(broker / "control")
    assert transport["store_processed"] is True
    assert all((broker / name).is_dir() for name in ("queue", "processed", "control"))


def test_settings_without_redis_keep_broker_and_beat_schedule_under_run_dir():
    found = _settings()

    assert found["transport"]["data_folder_in"] == str(ROOT / ".run/broker/queue")
    assert found["beat_schedule"] == str(ROOT / ".run/celerybeat-schedule")


def test_settings_eager_only_when_environment_forces_it():
    with_redis = _settings(REDIS_URL="redis://127.0.0.1:6379/10")
    forced = _settings(CELERY_TASK_ALWAYS_EAGER="true")

    assert (with_redis["broker"], with_redis["eager"]) == (
        "redis://127.0.0.1:6379/10",
        False,
    )
    assert "data_folder_in" not in with_redis["transport"]
    assert forced["eager"] is True


def test_settings_sqlite_gets_wal_and_immediate_transactions_postgres_does_not(
    tmp_path,
):
    sqlite = _settings(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    postgres = _settings(DATABASE_URL="postgres://postgres@127.0.0.1:5432/x")

    assert sqlite["db_options"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in sqlite["db_options"]["init_command"]
    assert sqlite["db_options"]["timeout"] >= 20
    assert "init_command" not in postgres["db_options"]
    assert "transaction_mode" not in postgres["db_options"]


def test_celery_routes_topup_tasks_to_topups_queue_and_the_rest_to_default():
    def queue(task: str) -> str:
        return celery_app.amqp.router.route({}, task)["queue"].name

    assert queue("fulfillment.tasks.topup_submit_task") == "topups"
    assert queue("fulfillment.tasks.card_code_expire_task") == "celery"
    assert queue("orders.tasks.order_expire_unpaid_task") == "celery"


def test_celery_queues_are_bound_apart_so_no_message_reaches_both():
    bindings = {
        q.name: (q.exchange.name, q.routing_key)
        for q in celery_app.amqp.queues.values()
    }

    assert bindings == {"celery": ("celery", "celery"), "topups": ("topups", "topups")}


# --- A real worker on the filesystem broker -------------------------------------


def _database_url() -> str:
    """The test database as a URL, for a worker in another process."""
    db = connection.settings_dict
    assert db["ENGINE"].endswith("postgresql"), "the suite runs on PostgreSQL"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_filesystem_broker_worker_runs_task_published_by_another_process(tmp_path):
    sku = SkuFactory(code="YK-VIP-MONTH")
    stock_codes(sku, 2)
    CardCode.objects.update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    env = _clean_env(
        DATABASE_URL=_database_url(),
        CELERY_BROKER_DIR=str(tmp_path / "broker"),
        CONN_MAX_AGE="0",
    )
    worker = Captured(
        [
            *(sys.executable, "-m", "celery", "-A", "config", "worker"),
            *("--pool=solo", "-Q", "celery,topups", "--loglevel=INFO"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ],
        env,
    )
    try:
        assert _wait_for(lambda: worker.has_line(r"ready\.")), worker.output

        published = subprocess.run(
            [
                sys.executable,
                "-c",
                "import django; django.setup()\n"
                "from fulfillment.tasks import card_code_expire_task\n"
                "card_code_expire_task.delay()\n"
                "card_code_expire_task.apply_async(queue='topups')",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert published.returncode == 0, published.stderr
        assert _wait_for(
            lambda: (
                CardCode.objects.filter(status=CardCode.Status.EXPIRED).count() == 2
            ),
            seconds=20,
        ), worker.output
        assert _wait_for(
            lambda: len(worker.matching(r"card_code_expire_task\[.*\] succeeded")) == 2
        ), worker.output
        assert list((tmp_path / "broker/queue").iterdir()) == []
        processed = (tmp_path / "broker/processed").iterdir()
        assert sorted(f.name.split(".", 1)[1] for f in processed) == [
            "celery.msg",
            "topups.msg",
        ]
    finally:
        if worker.proc.poll() is None:
            worker.proc.terminate()
            worker.finish()
        worker.kill_group()


# --- scripts/run_demo.py ---------------------------------------------------------


@pytest.fixture
def demo(tmp_path):
    """Start the runner as make run does, on free ports and a throwaway database."""
    ports = {"web": _free_port(), "simulator": _free_port()}
    env = _clean_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        CELERY_BROKER_DIR=str(tmp_path / "broker"),
        CELERY_BEAT_SCHEDULE_FILENAME=str(tmp_path / "celerybeat-schedule"),
    )
    runner = Captured(
        [
            *(sys.executable, str(ROOT / "scripts/run_demo.py")),
            *("--port", str(ports["web"]), "--simulator-port", str(ports["simulator"])),
        ],
        env,
    )
    runner.ports = ports  # type: ignore[attr-defined]
    yield runner
    # Whatever the test did, leave nothing running.
    runner.kill_group()
    for pgid in _child_pids(runner).values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


def _child_pids(runner: Captured) -> dict[str, int]:
    return {
        m["name"]: int(m["pid"])
        for line in list(runner.lines)
        if (m := re.search(r"started (?P<name>\w+) \(pid (?P<pid>\d+)\)", line))
    }


def _healthz(port: int) -> bool:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    except httpx.HTTPError:
        return False
    return response.status_code == 200 and response.text == "ok"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_until_ready(demo: Captured) -> None:
    ports = demo.ports  # type: ignore[attr-defined]
    assert _wait_for(lambda: _healthz(ports["web"])), demo.output
    assert _wait_for(lambda: demo.has_line(r"^worker\s+\| .*ready\.")), demo.output
    assert _wait_for(lambda: demo.has_line(r"^beat\s+\| .*beat: Starting")), demo.output
    assert _wait_for(lambda: _listening(ports["simulator"])), demo.output


def test_run_demo_starts_every_process_and_stops_them_all_on_sigterm(demo):
    _wait_until_ready(demo)
    pids = _child_pids(demo)

    demo.proc.send_signal(signal.SIGTERM)

    assert demo.finish() == 0, demo.output
    assert set(pids) == {"web", "worker", "beat", "simulator"}
    assert demo.has_line(r"^runner\s+\| all processes stopped")
    assert not demo.has_line("did not stop"), demo.output  # stopped, not killed
    assert _live_processes({demo.proc.pid, *pids.values()}) == []


def test_run_demo_stops_everything_when_one_process_dies(demo):
    _wait_until_ready(demo)
    pids = _child_pids(demo)

    os.kill(pids["worker"], signal.SIGKILL)

    assert demo.finish() != 0
    assert demo.has_line(r"worker exited with code -9; stopping the others")
    assert _live_processes({demo.proc.pid, *pids.values()}) == []
