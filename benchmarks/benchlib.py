"""Shared helpers for the benchmarks: environment, database, gunicorn, tables.

Everything here talks only to 127.0.0.1 (PostgreSQL, Redis, the gunicorn we start).
The benchmark scripts import this module by name: `python benchmarks/<script>.py`
puts benchmarks/ first on sys.path.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg2
from benchlib_cpu import CLK_TCK as CLK_TCK
from benchlib_cpu import CpuAccount as CpuAccount
from benchlib_cpu import CpuMeter as CpuMeter
from benchlib_cpu import _all_pids as _all_pids
from benchlib_cpu import descendants as descendants
from benchlib_cpu import loadavg as loadavg
from benchlib_cpu import pg_backends as pg_backends
from benchlib_cpu import proc_cpu_seconds as proc_cpu_seconds
from benchlib_cpu import proc_stop as proc_stop
from benchlib_cpu import wait_for_load as wait_for_load
from benchlib_cpu import wait_for_quiet as wait_for_quiet
from benchlib_tables import APP_PACKAGES as APP_PACKAGES
from benchlib_tables import _fmt as _fmt
from benchlib_tables import _frame_name as _frame_name
from benchlib_tables import collapsed_summary as collapsed_summary
from benchlib_tables import median as median
from benchlib_tables import percentile as percentile
from benchlib_tables import print_profile as print_profile
from benchlib_tables import print_table as print_table
from psycopg2 import sql

# The tree these scripts live in (its venv runs everything, results go under it)...
BENCH_ROOT = Path(__file__).resolve().parent.parent
# ...and the application they measure: this tree, or another checkout of the app
# (KAQUAN_APP_ROOT, e.g. an older commit in a worktree without these scripts).
# manage.py, gunicorn and in-process Django all run from ROOT.
ROOT = Path(os.environ.get("KAQUAN_APP_ROOT") or BENCH_ROOT).resolve()
PYTHON = str(BENCH_ROOT / ".venv" / "bin" / "python")
GUNICORN = str(BENCH_ROOT / ".venv" / "bin" / "gunicorn")
RESULTS = BENCH_ROOT / "benchmarks" / "results"
PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"

# Variables we set ourselves; anything the calling shell exports under these names
# is dropped so a run never inherits someone's EMAIL_URL or DATABASE_URL.
_OWNED_VARS = (
    "DATABASE_URL",
    "REDIS_URL",
    "DEBUG",
    "SECRET_KEY",
    "VAULT_KEYS",
    "VAULT_FINGERPRINT_KEY",
    "SANDBOX_PAY_SECRET",
    "ALLOWED_HOSTS",
    "CONN_MAX_AGE",
    "EMAIL_URL",
    "EMAIL_BACKEND",
    "CACHE_KEY_PREFIX",
    "LOG_LEVEL",
    "PAYMENT_NOTIFY_BASE_URL",
    "HTTP_ALLOW_PRIVATE_ADDRESSES",
    "CELERY_TASK_ALWAYS_EAGER",
    "CELERY_BROKER_DIR",
    "SITE_URL",
    "SUPPLIER_CALLBACK_BASE_URL",
    "TOPUP_LEASE_SECONDS",
    "TOPUP_PLACEMENT_GRACE_SECONDS",
    "TOPUP_DEADLINE_MINUTES",
    "SECURE_SSL_REDIRECT",
)


def pg_dsn(db_name: str) -> str:
    return f"host=127.0.0.1 port=5432 user=postgres dbname={db_name}"


def bench_env(*, db_name: str, redis_url: str | None) -> dict[str, str]:
    """A production-like environment (DEBUG off) with freshly generated secrets."""
    from cryptography.fernet import Fernet

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _OWNED_VARS and not k.endswith("_FILE")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "VAULT_KEYS": Fernet.generate_key().decode(),
            "VAULT_FINGERPRINT_KEY": secrets.token_urlsafe(32),
            "SANDBOX_PAY_SECRET": secrets.token_urlsafe(32),
            "ALLOWED_HOSTS": "127.0.0.1",
            # gunicorn is reached over plain HTTP on loopback, with no TLS proxy.
            "SECURE_SSL_REDIRECT": "false",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db_name}",
            "CONN_MAX_AGE": "600",
            # A prefix of its own per run: nothing cached by an earlier run (a
            # fragment, a sold-out flag for the same SKU id) can leak into this one.
            "CACHE_KEY_PREFIX": f"kaquan-bench-{secrets.token_hex(4)}",
            # The console backend is the default; with REDIS_URL set no email is sent
            # in-process anyway (the task waits in Redis and is purged afterwards).
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "LOG_LEVEL": "WARNING",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    else:
        # Without REDIS_URL the settings fall back to the make-run demo's filesystem
        # broker, which nothing consumes here: run the tasks in-process instead.
        env["CELERY_TASK_ALWAYS_EAGER"] = "true"
    return env


def db_recreate(db_name: str) -> None:
    """DROP and CREATE a benchmark database (refuses names not starting kaquan_bench)."""
    if not db_name.startswith("kaquan_bench"):
        raise SystemExit(
            f"refusing to drop {db_name!r}: benchmark databases start with kaquan_bench"
        )
    conn = psycopg2.connect(PG_ADMIN_DSN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [db_name],
        )
        cur.execute(
            sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(db_name))
        )
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db_name)))
    conn.close()


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """Run manage.py with the benchmark environment; raise on failure."""
    done = subprocess.run(
        [PYTHON, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(
            f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        )
    return done.stdout


def django_setup(env: dict[str, str]) -> None:
    """Configure Django in this process with the benchmark environment."""
    os.environ.update(env)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if ROOT != BENCH_ROOT:
        # Importing celery puts the working directory first on sys.path: it must be
        # the measured checkout, or this one's apps would shadow it.
        os.chdir(ROOT)
    import django

    django.setup()


# The columns a raw COPY of fresh, available codes fills (the rest take defaults).
CARDCODE_COPY_COLUMNS = (
    "sku_id",
    "batch_id",
    "ciphertext",
    "key_id",
    "fingerprint",
    "hint",
    "status",
    "created_at",
)


def fresh_django(
    *,
    db_name: str,
    redis_url: str | None = None,
    collectstatic: bool = False,
    extra_env: dict[str, str] | None = None,
) -> dict[str, str]:
    """Recreate and migrate the benchmark database, then set Django up against it.

    `extra_env` is added to the benchmark environment (this process and the returned env).
    """
    env = bench_env(db_name=db_name, redis_url=redis_url)
    env.update(extra_env or {})
    db_recreate(db_name)
    manage(env, "migrate", "--noinput")
    if collectstatic:
        manage(env, "collectstatic", "--noinput")
    django_setup(env)
    return env


def create_skus(codes: list[str], *, platform_slug: str, price: Any) -> list[Any]:
    """One platform, and a product with one card-code SKU per code (after django_setup)."""
    from catalog.models import Platform, Product, Sku

    platform = Platform.objects.create(
        name=platform_slug.title(), slug=platform_slug, account_rule="any"
    )
    skus = []
    for code in codes:
        product = Product.objects.create(
            platform=platform, name=code, slug=code.lower()
        )
        skus.append(
            Sku.objects.create(
                product=product, code=code, name=code, face_value=price, price=price
            )
        )
    return skus


def django_close_connections() -> None:
    from django.db import connections

    connections.close_all()


class Gunicorn:
    """A gunicorn we start and stop ourselves (by pid, never by name)."""

    def __init__(
        self,
        *,
        env: dict[str, str],
        port: int,
        workers: int,
        worker_class: str,
        log_path: Path,
        threads: int = 1,
    ) -> None:
        self.env = env
        self.threads = threads
        self.port = port
        self.workers = workers
        self.worker_class = worker_class
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None  # noqa: S101
        return self.proc.pid

    @property
    def command(self) -> list[str]:
        return [
            GUNICORN,
            "config.wsgi",
            "-w",
            str(self.workers),
            "-k",
            self.worker_class,
            "-b",
            f"127.0.0.1:{self.port}",
            "--error-logfile",
            str(self.log_path),
            "--log-level",
            "warning",
            *(["--threads", str(self.threads)] if self.threads > 1 else []),
        ]

    def start(self, *, timeout: float = 30) -> None:
        import httpx

        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # The workers' own output (Django's request warnings: a rush logs every
        # 409) goes to the log file too, not over the benchmark's report.
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/healthz"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"gunicorn exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"gunicorn did not answer {url} within {timeout} s")

    def stop(self, *, timeout: float = 15) -> None:
        proc_stop(self.proc, timeout=timeout)


def redis_purge_prefix(url: str, prefix: str) -> int:
    """Delete the cache keys one run wrote (Django's Redis cache names them
    `<prefix>:<version>:<key>`); returns how many."""
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()
    return len(keys)


def git_state(root: Path) -> dict[str, Any]:
    """HEAD and uncommitted changes of a checkout, by read-only git calls (no index
    refresh: others work in the same tree)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    changed = [line for line in git("status", "--porcelain").splitlines() if line]
    return {
        "root": str(root),
        "head": git("rev-parse", "--short", "HEAD") or "unknown",
        "subject": git("log", "-1", "--format=%s")[:100],
        "dirty": bool(changed),
        "changed_files": len(changed),
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine_info() -> dict[str, Any]:
    with open("/proc/meminfo", encoding="ascii") as fh:
        mem_kb = int(fh.readline().split()[1])
    conn = psycopg2.connect(PG_ADMIN_DSN)
    with conn.cursor() as cur:
        cur.execute("SHOW server_version")
        pg_version = cur.fetchone()[0]
    conn.close()
    return {
        "app_source": app_source_digest(),
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "postgres": pg_version,
        "kernel": platform.release(),
    }


APP_DIRS = (
    "config",
    "catalog",
    "orders",
    "fulfillment",
    "risk",
    "distribution",
    "templates",
)


def app_source_digest() -> dict[str, Any]:
    """A digest of the application's source, so a figure can be tied to the code it measured
    (the benchmarks never run git; other people edit the tree in parallel)."""
    import hashlib

    digest = hashlib.sha256()
    files = sorted(
        p
        for d in APP_DIRS
        for p in (ROOT / d).rglob("*")
        if p.is_file() and p.suffix in (".py", ".html", ".txt")
    )
    newest = 0.0
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
        newest = max(newest, path.stat().st_mtime)
    return {
        "sha256": digest.hexdigest()[:16],
        "files": len(files),
        "newest_change": dt.datetime.fromtimestamp(newest, tz=dt.UTC).isoformat(
            timespec="seconds"
        ),
    }


def write_json(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(tz=dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    return path
