"""checkout_paid_orders.py's py-spy helpers: sample the gunicorn workers during a run."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import benchlib


def start_py_spy(
    py_spy: str, master_pid: int, *, seconds: float, tag: str
) -> tuple[subprocess.Popen[bytes], Path]:
    """Sample every gunicorn worker (collapsed stacks) while a run goes on."""
    out = benchlib.RESULTS / f"py-spy-checkout-{tag}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(master_pid),
            "--subprocesses",
            "--format",
            "raw",
            "--rate",
            "200",
            "--duration",
            str(int(seconds)),
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, out


def finish_py_spy(proc: subprocess.Popen[bytes], out: Path) -> dict[str, Any]:
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    summary = benchlib.collapsed_summary(out)
    benchlib.print_profile(
        summary, title=f"py-spy over the gunicorn workers ({out.name})"
    )
    return summary
