"""benchlib's process and CPU gauges: stopping our children, system and per-process
CPU from /proc, the PostgreSQL backends of a database, and waiting for a quiet machine.

Every name here is re-exported by benchlib (scripts use benchlib.<name>)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import Any


def proc_stop(proc: subprocess.Popen[Any] | None, *, timeout: float) -> None:
    """SIGTERM a child we started, then SIGKILL it if it outlives `timeout` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class CpuMeter:
    """System-wide CPU busy and steal shares between enter and exit, from /proc/stat.

    Steal is time the hypervisor gave our virtual CPUs to someone else: on a shared
    host it slows everything down without showing up as any process's CPU time.
    """

    @staticmethod
    def _read() -> tuple[int, int, int]:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        steal = fields[7] if len(fields) > 7 else 0
        return sum(fields[:8]), idle, steal

    def __enter__(self) -> CpuMeter:
        self.total0, self.idle0, self.steal0 = self._read()
        self.busy = 0.0
        self.steal = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        total1, idle1, steal1 = self._read()
        total = total1 - self.total0
        if total:
            self.busy = 1 - (idle1 - self.idle0) / total
            self.steal = (steal1 - self.steal0) / total


CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of one process (all its threads), or None once it has exited."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # stat fields 14 and 15


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def descendants(root: int) -> list[int]:
    """root and every process below it (gunicorn master and workers)."""
    parents: dict[int, int] = {}
    for pid in _all_pids():
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
                parents[pid] = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    found = [root]
    frontier = [root]
    while frontier:
        current = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == current]
        found.extend(children)
        frontier.extend(children)
    return found


def pg_backends(db_name: str) -> list[int]:
    """PostgreSQL backend processes serving one database (from their process titles)."""
    pids = []
    needle = f" {db_name} ".encode()
    for pid in _all_pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                title = fh.read()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if title.startswith(b"postgres: ") and needle in title:
            pids.append(pid)
    return pids


class CpuAccount:
    """CPU seconds spent by given process groups between enter and exit.

    Groups are callables returning pids, evaluated at both ends; a process born in
    between counts from zero. This separates our cost from other load on the machine.
    """

    def __init__(self, groups: dict[str, Any]) -> None:
        self.groups = groups
        self.seconds: dict[str, float] = {}

    def _snapshot(self) -> dict[str, dict[int, float]]:
        snap: dict[str, dict[int, float]] = {}
        for name, pids_of in self.groups.items():
            snap[name] = {}
            for pid in pids_of():
                cpu = proc_cpu_seconds(pid)
                if cpu is not None:
                    snap[name][pid] = cpu
        return snap

    def __enter__(self) -> CpuAccount:
        self.start = self._snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._snapshot()
        for name, pids in end.items():
            self.seconds[name] = sum(
                cpu - self.start[name].get(pid, 0.0) for pid, cpu in pids.items()
            )


def wait_for_quiet(*, max_busy: float = 0.15, max_wait: float = 10.0) -> float:
    """Wait (bounded) until the machine is mostly idle; returns the last busy share seen.

    Other work on this machine (test suites, browsers) shares its two cores; a
    figure taken while they run says little about our code.
    """
    deadline = time.monotonic() + max_wait
    busy = 1.0
    while True:
        with CpuMeter() as meter:
            time.sleep(1.0)
        busy = meter.busy
        if busy <= max_busy or time.monotonic() >= deadline:
            return busy


def loadavg() -> tuple[float, float, float]:
    """The 1-, 5- and 15-minute load averages."""
    with open("/proc/loadavg", encoding="ascii") as fh:
        one, five, fifteen = (float(x) for x in fh.read().split()[:3])
    return one, five, fifteen


def wait_for_load(
    *,
    max_load: float = 0.5,
    max_busy: float = 0.10,
    quiet_windows: int = 3,
    window: float = 5.0,
    poll: float = 30.0,
    max_wait: float = 2400.0,
) -> dict[str, Any]:
    """Wait (bounded, default 40 min) until the machine is quiet before a measured run.

    Quiet: the 1-minute load average is below `max_load`, or the CPU was at most
    `max_busy` busy in each of `quiet_windows` consecutive `window`-second samples.
    The second test exists because the load average still carries the last minute
    of our own previous run (it decays with a one-minute time constant), while the
    samples see only what runs now. Returns what was seen; `quiet` is False when
    `max_wait` ran out (the caller decides whether to measure anyway).
    """
    started = time.monotonic()
    while True:
        samples = []
        load = loadavg()
        if load[0] >= max_load:
            for _ in range(quiet_windows):
                with CpuMeter() as meter:
                    time.sleep(window)
                samples.append(meter.busy)
                if meter.busy > max_busy:
                    break
        waited = time.monotonic() - started
        quiet = load[0] < max_load or (
            len(samples) == quiet_windows and max(samples) <= max_busy
        )
        if quiet or waited >= max_wait:
            return {
                "quiet": quiet,
                "loadavg": load,
                "busy_samples": samples,
                "waited_s": round(waited, 1),
            }
        print(
            f"  waiting for a quiet machine: load {load[0]:.2f}, "
            f"busy {', '.join(f'{b:.0%}' for b in samples)} ({waited:.0f} s so far)",
            flush=True,
        )
        time.sleep(poll)
