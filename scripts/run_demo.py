"""Run the make-run demo: web, Celery worker, Celery beat and the supplier simulator.

    .venv/bin/python scripts/run_demo.py [--port 8000] [--simulator-port 8099]

Each process runs in its own session, so a Ctrl-C in the terminal reaches only
this runner, which then stops them in order: SIGTERM to each process (Celery's
warm shutdown finishes the running tasks), SIGKILL to whatever is left in their
process groups after the grace period. If any process exits by itself, the
others are stopped too: a demo with a dead worker would look alive but never
expire an order. Every output line is prefixed with the process name.

Standard library only (plus Django, to ask which commands exist). honcho and a
Procfile would do most of this, but a Procfile cannot leave the simulator out
when its command is not there, nor check the ports and the broker folder first;
these 300 lines spare a dependency.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
GRACE_SECONDS = 10.0
POLL_SECONDS = 0.2
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_HELD: list[IO[str]] = []  # files open for the runner's lifetime (the broker lock)
COLOURS = ("36", "33", "35", "32", "34")  # cyan, yellow, magenta, green, blue


@dataclass(frozen=True)
class Child:
    """A process to run: its name (the output prefix), argv and prefix colour."""

    name: str
    argv: list[str]
    colour: str = "1"


@dataclass
class Running:
    child: Child
    proc: subprocess.Popen[bytes]
    pump: threading.Thread | None = None


class Output:
    """Serialises the lines of every process onto our stdout, each with its prefix."""

    def __init__(self, width: int) -> None:
        self._lock = threading.Lock()
        self._width = width
        self._tty = sys.stdout.isatty()

    def line(self, name: str, text: str, colour: str = "1") -> None:
        prefix = f"{name:<{self._width}} | "
        if self._tty:
            prefix = f"\033[{colour}m{prefix}\033[0m"
        with self._lock:
            sys.stdout.write(prefix + text.rstrip("\r\n") + "\n")
            sys.stdout.flush()

    def pump(self, child: Child, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            self.line(child.name, raw.decode("utf-8", "replace"), child.colour)
        stream.close()


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the runner itself is SIGKILLed (Linux)."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _django_setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def _simulator_available() -> bool:
    from django.core.management import get_commands

    return "supplier_simulator" in get_commands()


def _prepare_broker() -> bool:
    """Create .run/, lock the filesystem broker's folder, drop delivered messages.

    False when another runner holds the lock: two demos on one broker folder
    would run two beats and empty each other's processed/ folder.
    """
    from django.conf import settings

    Path(settings.CELERY_BEAT_SCHEDULE_FILENAME).parent.mkdir(
        parents=True, exist_ok=True
    )
    if not settings.CELERY_BROKER_URL.startswith("filesystem"):
        return True
    processed = Path(str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["processed_folder"]))
    lock = (processed.parent / "run_demo.lock").open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return False
    _HELD.append(lock)  # the lock lasts as long as the file stays open
    shutil.rmtree(processed, ignore_errors=True)
    processed.mkdir(parents=True, exist_ok=True)
    return True


def build_children(
    *, port: int, simulator_port: int, with_simulator: bool
) -> list[Child]:
    manage = [sys.executable, str(ROOT / "manage.py")]
    celery = [sys.executable, "-m", "celery", "-A", "config"]
    specs = [
        ("web", [*manage, "runserver", f"127.0.0.1:{port}"]),
        (
            "worker",
            [
                *celery,
                "worker",
                "--loglevel=INFO",
                "--concurrency=2",
                "-Q",
                "celery,topups",
                # One worker: gossip, mingle and heartbeats would only add
                # broadcast traffic to the filesystem broker.
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
        ),
        ("beat", [*celery, "beat", "--loglevel=INFO"]),
    ]
    if with_simulator:
        specs.append(
            (
                "simulator",
                [*manage, "supplier_simulator", "--port", str(simulator_port)],
            )
        )
    return [
        Child(name=name, argv=argv, colour=COLOURS[i % len(COLOURS)])
        for i, (name, argv) in enumerate(specs)
    ]


class Runner:
    def __init__(self, children: Sequence[Child], *, grace: float) -> None:
        self.children = list(children)
        self.grace = grace
        self.running: list[Running] = []
        self.out = Output(max(len(c.name) for c in [*self.children, RUNNER]))
        self._stop = threading.Event()
        self._signal = signal.SIGTERM

    def say(self, text: str) -> None:
        self.out.line(RUNNER.name, text)

    def request_stop(self, signum: int, _frame: object) -> None:
        self._signal = signal.Signals(signum)
        self._stop.set()

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # Fork every child before any output thread exists: preexec_fn is only
        # safe in a process with a single thread. The pipes buffer meanwhile.
        for child in self.children:
            proc = subprocess.Popen(  # noqa: S603 (our own argv, no shell)
                child.argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
            self.running.append(Running(child=child, proc=proc))
        for run in self.running:
            if run.proc.stdout is not None:
                run.pump = threading.Thread(
                    target=self.out.pump,
                    args=(run.child, run.proc.stdout),
                    name=f"pump-{run.child.name}",
                    daemon=True,
                )
                run.pump.start()
            self.say(f"started {run.child.name} (pid {run.proc.pid})")

    def wait(self) -> int:
        """Block until a signal or a child's exit; return the runner's exit code."""
        while not self._stop.wait(POLL_SECONDS):
            for run in self.running:
                code = run.proc.poll()
                if code is not None:
                    self.say(
                        f"{run.child.name} exited with code {code}; stopping the others"
                    )
                    return code or 1
        self.say(f"got {self._signal.name}; stopping")
        return 0

    def stop(self) -> None:
        """SIGTERM every process, wait for the grace period, SIGKILL their groups."""
        alive = [run for run in self.running if run.proc.poll() is None]
        for run in alive:
            with contextlib.suppress(ProcessLookupError):
                run.proc.terminate()
        deadline = time.monotonic() + self.grace
        for run in alive:
            try:
                run.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(
                    f"{run.child.name} did not stop in {self.grace:g} s; killing it"
                )
        # Each child leads its own process group (start_new_session): this also
        # takes any pool process or reloader child that outlived its parent.
        for run in self.running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(run.proc.pid, signal.SIGKILL)
            run.proc.wait()
        for run in self.running:
            if run.pump is not None:
                run.pump.join(timeout=2)
        self.say("all processes stopped")


RUNNER = Child(name="runner", argv=[])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
    parser.add_argument(
        "--simulator-port",
        type=int,
        default=int(os.environ.get("SIMULATOR_PORT", 8099)),
    )
    parser.add_argument("--grace", type=float, default=GRACE_SECONDS)
    args = parser.parse_args(argv)

    _django_setup()
    with_simulator = _simulator_available()
    children = build_children(
        port=args.port,
        simulator_port=args.simulator_port,
        with_simulator=with_simulator,
    )
    runner = Runner(children, grace=args.grace)
    if not with_simulator:
        runner.say(
            "supplier_simulator is not an available command yet: "
            "running without the supplier simulator (top-ups will not progress)"
        )
    ports = [("PORT", args.port)]
    if with_simulator:
        ports.append(("SIMULATOR_PORT", args.simulator_port))
    busy = [f"{name}={port}" for name, port in ports if _port_in_use(port)]
    if busy:
        runner.say(f"port already in use: {', '.join(busy)}; set another and retry")
        return 1
    if not _prepare_broker():
        runner.say("another run_demo.py is using this broker folder; stop it first")
        return 1

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, runner.request_stop)
    try:
        runner.start()
        code = runner.wait()
    finally:
        runner.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
