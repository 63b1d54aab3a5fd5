"""`make bench`: the Django floor and Kaquan's benchmarks in one run, as ratios.

    .venv/bin/python benchmarks/bench_all.py [--quick] [--soak] [--app-root PATH]

1. The floor (../shared/bench-floor/run_floor.sh, --floor-dir): plain Django + gunicorn
   + PostgreSQL on this machine; its `floor <endpoint> <req/s> p50 .. p99 ..` lines.
2. Kaquan's pages (benchmarks/pages.py): product page and home under wrk, as the floor.
3. Paid orders at 8 clients, the rush (10,000 buyers on 100 codes, 64 at a time, at
   least the floor's length and until every buyer is answered) and the raw-SQL
   baseline of the same run (benchmarks/checkout_paid_orders.py).
4. The import of 100,000 new codes beside COPY (benchmarks/import_codes.py).
5. With --soak: benchmarks/soak.py --minutes 10 (not part of plain `make bench`).
Before each phase it waits (bounded) for a quiet machine. It prints one table (path,
Kaquan, baseline, ratio, goal, PASS/FAIL; the server CPU per paid order also
NORMALIZED to the machine the goal was set on, as estimates: bench_report.py), the
correctness checks of every run and the machine's state, and writes everything to
benchmarks/results/bench-<time>.json.
--quick shortens every phase (5 s wrk, a 2,000-buyer rush, 20,000 codes) to try the
command out; its figures are not the ones to record. --app-root (or KAQUAN_APP_ROOT)
measures another checkout of the app with these scripts (the floor is unchanged).
Exits 1 when a phase fails or a correctness check does (--strict: a missed goal too).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import benchlib
from bench_report import check_rows, print_summary, ratio_rows

HERE = Path(__file__).resolve().parent
PHASES = ("floor", "pages", "checkout", "import")
FULL = {
    "wrk_seconds": 15,
    "paid_seconds": 20,
    "raw_seconds": 10,
    "paid_codes": 20000,
    "raw_codes": 20000,
    "rush_codes": 100,
    "rush_clients": 64,
    "rush_attempts": 10000,
    "import_codes": 100000,
}
QUICK = {
    **FULL,
    "wrk_seconds": 5,
    "paid_seconds": 5,
    "raw_seconds": 5,
    "paid_codes": 3000,
    "raw_codes": 5000,
    "rush_attempts": 2000,
    "import_codes": 20000,
}
PHASE_TIMEOUT = 1800  # seconds; every phase bounds its own loops, this bounds the phase
FLOOR_LINE = re.compile(r"^floor (\S+) ([\d.]+) p50 (\S+) p99 (\S+)\s*$")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--floor-dir",
        default=str(benchlib.BENCH_ROOT.parent / "shared" / "bench-floor"),
        help="the Django floor (run_floor.sh); default ../shared/bench-floor",
    )
    p.add_argument(
        "--app-root",
        default=os.environ.get("KAQUAN_APP_ROOT", ""),
        help="the checkout of the app to measure (default: this one)",
    )
    p.add_argument("--quick", action="store_true", help="short phases, to try it out")
    p.add_argument(
        "--only", default=",".join(PHASES), help=f"comma-separated subset of {PHASES}"
    )
    p.add_argument("--soak", action="store_true", help="also run benchmarks/soak.py")
    p.add_argument("--soak-minutes", type=float, default=10)
    p.add_argument(
        "--quiet-wait", type=float, default=30, help="max seconds to wait for quiet"
    )
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    p.add_argument(
        "--checkout-db-name",
        default="kaquan_bench",
        help="the paid-orders phase's database (recreated; must start kaquan_bench)",
    )
    p.add_argument(
        "--checkout-port", type=int, default=8765, help="the paid-orders phase's port"
    )
    p.add_argument("--strict", action="store_true", help="exit 1 on a missed goal")
    return p.parse_args()


# --- running a phase ---------------------------------------------------------------


def run_phase(
    name: str, cmd: list[str], *, env: dict[str, str], log_dir: Path
) -> tuple[int, str]:
    """Run one phase, echoing its output indented and keeping it in log_dir/<name>.log."""
    shown = [a for a in cmd if a != RUN_WITH_OUR_BENCHLIB]  # its path says enough
    print(f"\n== {name}: {' '.join(shown)}", flush=True)
    lines: list[str] = []
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=benchlib.BENCH_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # SIGINT lets a Python phase stop its gunicorn in `finally`; the shell traps EXIT.
    stop = signal.SIGTERM if cmd[0] == "bash" else signal.SIGINT
    watchdog = threading.Timer(PHASE_TIMEOUT, proc.send_signal, args=(stop,))
    watchdog.start()
    try:
        assert proc.stdout is not None  # noqa: S101
        for line in proc.stdout:
            lines.append(line)
            print(f"   {line}", end="", flush=True)
        rc = proc.wait()
    finally:
        watchdog.cancel()
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / f"{name}.log").write_text("".join(lines), encoding="utf-8")
    if rc != 0:
        print(f"== {name} exited with {rc}", flush=True)
    return rc, "".join(lines)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def floor_figures(out: str) -> dict[str, dict[str, float]]:
    found = {}
    for line in out.splitlines():
        match = FLOOR_LINE.match(line.strip())
        if match:
            endpoint, rps, p50, p99 = match.groups()
            found[endpoint] = {
                "req_per_s": float(rps),
                "p50_ms": _wrk_ms(p50),
                "p99_ms": _wrk_ms(p99),
            }
    return found


def _wrk_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        return float("nan")
    return float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]


# --- the run -----------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    sizes = QUICK if args.quick else FULL
    only = {p.strip() for p in args.only.split(",") if p.strip()}
    app_root = Path(args.app_root).resolve() if args.app_root else benchlib.BENCH_ROOT
    if not (app_root / "manage.py").is_file():
        raise SystemExit(f"--app-root {app_root}: no manage.py there")
    floor_dir = Path(args.floor_dir).resolve()
    stamp = dt.datetime.now(tz=dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    work = benchlib.RESULTS / f"bench-{stamp}"
    work.mkdir(parents=True, exist_ok=True)

    kaquan_env = {k: v for k, v in os.environ.items() if k not in ("KAQUAN_APP_ROOT",)}
    kaquan_env["PYTHONUNBUFFERED"] = "1"
    if app_root != benchlib.BENCH_ROOT:
        kaquan_env["KAQUAN_APP_ROOT"] = str(app_root)
    py = benchlib.PYTHON
    report: dict[str, Any] = {
        "started": stamp,
        "args": vars(args),
        "sizes": sizes,
        "app": benchlib.git_state(app_root),
        "scripts": benchlib.git_state(benchlib.BENCH_ROOT),
        "machine": benchlib.machine_info(),
        "loadavg_start": benchlib.loadavg(),
        "busy_before": {},
        "phase_seconds": {},
        "phases": {},
        "failed_phases": [],
    }
    print(f"app: {report['app']}\nmachine: {report['machine']}", flush=True)

    def quiet(phase: str) -> None:
        busy = benchlib.wait_for_quiet(max_wait=args.quiet_wait)
        report["busy_before"][phase] = {"busy": busy, "loadavg": benchlib.loadavg()}

    def phase(name: str, cmd: list[str], env: dict[str, str]) -> str | None:
        quiet(name)
        t0 = time.monotonic()
        rc, out = run_phase(name, cmd, env=env, log_dir=work)
        report["phase_seconds"][name] = round(time.monotonic() - t0)
        if rc != 0:
            report["failed_phases"].append(name)
        return out

    if "floor" in only:
        floor_env = {**os.environ, "FLOOR_SECONDS": str(sizes["wrk_seconds"])}
        out = phase("floor", ["bash", str(floor_dir / "run_floor.sh")], floor_env)
        report["phases"]["floor"] = floor_figures(out or "")
    if "pages" in only:
        path = work / "pages.json"
        phase(
            "pages",
            [
                *(py, str(HERE / "pages.py")),
                *("--duration", str(sizes["wrk_seconds"])),
                *("--redis-url", args.redis_url, "--json-path", str(path)),
            ],
            kaquan_env,
        )
        report["phases"]["pages"] = read_json(path)
    if "checkout" in only:
        path = work / "checkout.json"
        phase(
            "checkout",
            [
                *(py, str(HERE / "checkout_paid_orders.py"), "--concurrency", "8"),
                *("--duration", str(sizes["paid_seconds"])),
                *("--raw-duration", str(sizes["raw_seconds"])),
                *("--codes", str(sizes["paid_codes"])),
                *("--raw-codes", str(sizes["raw_codes"])),
                *("--rush-codes", str(sizes["rush_codes"])),
                *("--rush-clients", str(sizes["rush_clients"])),
                *("--rush-attempts", str(sizes["rush_attempts"])),
                # at least the floor's length, and on until every buyer is answered
                *("--rush-seconds", str(sizes["wrk_seconds"])),
                *("--stock-test", "0", "--redis-url", args.redis_url),
                *("--db-name", args.checkout_db_name),
                *("--port", str(args.checkout_port)),
                *("--json-path", str(path)),
            ],
            kaquan_env,
        )
        report["phases"]["checkout"] = read_json(path)
    if "import" in only:
        script = import_script(py, app_root)
        help_text = subprocess.run(
            [*script, "--help"],
            capture_output=True,
            text=True,
            env=kaquan_env,
            check=False,
            timeout=60,
        ).stdout
        started = time.time()
        out = phase(
            "import",
            [*script, "--codes", str(sizes["import_codes"]), "--json"]
            + (["--skip-cli"] if "--skip-cli" in help_text else [])
            # two more (import, COPY) pairs: the ratio of the medians of three
            + (["--pairs", "2"] if "--pairs" in help_text else []),
            kaquan_env,
        )
        report["phases"]["import"] = read_json(_import_json(out or "", started))
    if args.soak:
        path = work / "soak.json"
        phase(
            "soak",
            [
                *(py, str(HERE / "soak.py")),
                *("--minutes", f"{args.soak_minutes:g}", "--json", str(path)),
            ],
            kaquan_env,
        )
        report["phases"]["soak"] = read_json(path)
    report["loadavg_end"] = benchlib.loadavg()

    table, goals_met = ratio_rows(report, only=only)
    checks = check_rows(report, only=only, soak=args.soak)
    report["table"] = table
    report["checks"] = checks
    report["ok"] = all(c[2] for c in checks) and not report["failed_phases"]
    print_summary(report, table, checks, quick=args.quick)
    out_path = benchlib.RESULTS / f"bench-{stamp}.json"
    out_path.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    print(f"\nwrote {out_path} (phase logs in {work})")
    if not report["ok"] or (args.strict and not goals_met):
        sys.exit(1)


# Runs a script with these scripts' benchlib first on sys.path (and not the current
# directory, which is this checkout): argv = [benchmarks dir, script, its args...].
RUN_WITH_OUR_BENCHLIB = (
    "import runpy, sys; "
    "sys.path[:] = [sys.argv[1]] + [p for p in sys.path if p not in ('', '.')]; "
    "script = sys.argv[2]; sys.argv = sys.argv[2:]; "
    "runpy.run_path(script, run_name='__main__')"
)


def import_script(py: str, app_root: Path) -> list[str]:
    """The import benchmark: the measured checkout's own when it is another one and has
    one (its breakdown reaches into that checkout's service internals), run with these
    scripts' benchlib (which knows KAQUAN_APP_ROOT); otherwise ours."""
    own = app_root / "benchmarks" / "import_codes.py"
    if app_root != benchlib.BENCH_ROOT and own.is_file():
        return [py, "-c", RUN_WITH_OUR_BENCHLIB, str(HERE), str(own)]
    return [py, str(HERE / "import_codes.py")]


def _import_json(out: str, started: float) -> Path:
    """The JSON import_codes.py wrote: the path it printed, else the newest since start."""
    for line in reversed(out.splitlines()):
        match = re.match(r"^wrote (\S+\.json)\s*$", line.strip())
        if match:
            return Path(match.group(1))
    fresh = [
        p
        for p in benchlib.RESULTS.glob("import_codes-*.json")
        if p.stat().st_mtime >= started
    ]
    return (
        max(fresh, key=lambda p: p.stat().st_mtime) if fresh else Path("/nonexistent")
    )


if __name__ == "__main__":
    main()
