"""Storefront pages per second under wrk, measured the way the Django floor measures.

    .venv/bin/python benchmarks/pages.py [--duration 15] [--json-path PATH]

1. Recreate the database (kaquan_bench_pages), migrate, collectstatic (DEBUG is off),
   seed the demo catalog through the real services (`manage.py seed_demo --force`:
   four platforms, card-code products of three SKUs each with codes in stock, direct
   top-ups, a bundle), and mark the top-ups' supplier ready (product on, stock ok,
   funded), as its last refresh would, so the top-up SKUs are on sale.
2. Start `gunicorn config.wsgi -w 4 -k sync` with DEBUG=false, CONN_MAX_AGE=600 and
   REDIS_URL set (the cache is Redis, as in production), with a cache key prefix of
   this run's own.
3. For the product page (/p/<slug>/) and home (/), anonymous: one plain GET must
   answer 200 with the product's name in it; then wrk exactly like the floor's
   run_floor.sh (-t1 -c32, 3 s warm-up, then --duration s with --latency).
   Any non-2xx/3xx response or socket error fails the check.
CPU seconds of gunicorn and of the database's PostgreSQL backends are read from /proc,
so a figure taken on a shared machine can be judged (others' CPU share, steal).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import benchlib

DB_NAME = "kaquan_bench_pages"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/11"
DEFAULT_SLUG = "tencent-video-vip"  # seed_demo: three card-code SKUs with codes


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--duration", type=int, default=15, help="measured wrk seconds")
    p.add_argument("--warmup", type=int, default=3, help="wrk warm-up seconds")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    p.add_argument("--port", type=int, default=0, help="0: a free port")
    p.add_argument("--slug", default=DEFAULT_SLUG, help="the product page's product")
    p.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    p.add_argument("--json-path", default="", help="write the JSON report here")
    return p.parse_args()


# --- setup ---------------------------------------------------------------------


def seed(env: dict[str, str]) -> None:
    """The demo catalog through the real services, its top-ups on sale."""
    from decimal import Decimal

    # The simulator is never called: registering and mapping are local writes.
    benchlib.manage(
        env, "seed_demo", "--force", "--simulator-url", "http://127.0.0.1:8099"
    )
    from fulfillment.models import Supplier, SupplierProduct

    # What the supplier refresh would record (tests/factories: supplier_ready).
    SupplierProduct.objects.update(
        supplier_status=SupplierProduct.SupplierStatus.ON,
        supplier_stock=SupplierProduct.SupplierStock.OK,
    )
    Supplier.objects.update(last_balance=Decimal("10000.00"))


def page_names(slug: str) -> dict[str, str]:
    """The text each page must show: the product's name, and on home any platform's."""
    from catalog.models import Platform, Product

    product = Product.objects.filter(slug=slug).first()
    if product is None:
        raise SystemExit(f"no product {slug!r} after seeding")
    platform = Platform.objects.order_by("sort_order", "pk").first()
    return {"product": product.name, "home": platform.name if platform else ""}


# --- wrk -----------------------------------------------------------------------

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def to_ms(text: str) -> float:
    """wrk's '812.00us', '12.34ms', '1.02s' in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        return float("nan")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(out: str) -> dict[str, Any]:
    def first(pattern: str) -> re.Match[str] | None:
        return re.search(pattern, out, re.MULTILINE)

    rps = first(r"^Requests/sec:\s+([\d.]+)")
    total = first(r"^\s*(\d+) requests in")
    p50 = first(r"^\s+50%\s+(\S+)")
    p99 = first(r"^\s+99%\s+(\S+)")
    non2xx = first(r"Non-2xx or 3xx responses:\s+(\d+)")
    sock = first(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
    )
    return {
        "req_per_s": float(rps.group(1)) if rps else float("nan"),
        "requests": int(total.group(1)) if total else 0,
        "p50_ms": to_ms(p50.group(1)) if p50 else float("nan"),
        "p99_ms": to_ms(p99.group(1)) if p99 else float("nan"),
        "non_2xx_3xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(n) for n in sock.groups()) if sock else 0,
    }


def wrk(url: str, *, seconds: int, connections: int, latency: bool) -> str:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    done = subprocess.run(
        [*cmd, *(["--latency"] if latency else []), url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def measure(
    url: str, *, args: argparse.Namespace, server_pid: int, expect: str
) -> dict[str, Any]:
    """One plain GET (200, shows `expect`), the warm-up, then the measured wrk run."""
    import httpx

    first = httpx.get(url, timeout=15, follow_redirects=False)
    result: dict[str, Any] = {
        "url": url,
        "first_status": first.status_code,
        "first_shows_name": bool(expect) and expect in first.text,
    }
    wrk(url, seconds=args.warmup, connections=args.connections, latency=False)
    quiet = benchlib.wait_for_quiet(max_wait=5)
    groups = {
        "gunicorn": lambda: benchlib.descendants(server_pid),
        "postgres": lambda: benchlib.pg_backends(DB_NAME),
    }
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with benchlib.CpuMeter() as cpu, benchlib.CpuAccount(groups) as account:
        out = wrk(
            url, seconds=args.duration, connections=args.connections, latency=True
        )
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    result.update(parse_wrk(out))
    wrk_cpu = (children1.ru_utime - children0.ru_utime) + (
        children1.ru_stime - children0.ru_stime
    )
    ours = {**account.seconds, "wrk": wrk_cpu}
    requests = max(result["requests"], 1)
    wall_cpu = args.duration * (os.cpu_count() or 1)
    result.update(
        {
            "busy_before": quiet,
            "system_cpu_busy": cpu.busy,
            "system_cpu_steal": cpu.steal,
            "cpu_s": ours,
            "cpu_ms_per_request": {k: v * 1000 / requests for k, v in ours.items()},
            "other_cpu_share": max(
                0.0, cpu.busy - cpu.steal - sum(ours.values()) / wall_cpu
            ),
        }
    )
    result["ok"] = (
        result["first_status"] == 200
        and result["first_shows_name"]
        and result["requests"] > 0
        and result["non_2xx_3xx"] == 0
        and result["socket_errors"] == 0
    )
    return result


def main() -> None:
    args = parse_args()
    machine = benchlib.machine_info()
    print(f"machine: {machine}", flush=True)
    redis_url = args.redis_url or None
    env = benchlib.fresh_django(
        db_name=DB_NAME, redis_url=redis_url, collectstatic=True
    )
    seed(env)
    names = page_names(args.slug)
    benchlib.django_close_connections()

    port = args.port or benchlib.free_port()
    gunicorn = benchlib.Gunicorn(
        env=env,
        port=port,
        workers=args.workers,
        worker_class="sync",
        log_path=benchlib.RESULTS / "gunicorn-pages.log",
    )
    report: dict[str, Any] = {
        "machine": machine,
        "args": vars(args),
        "app_root": str(benchlib.ROOT),
        "server": " ".join(gunicorn.command[1:6]),
        "redis": bool(redis_url),
        "pages": {},
    }
    base = f"http://127.0.0.1:{port}"
    gunicorn.start()
    try:
        for name, path, expect in (
            ("product", f"/p/{args.slug}/", names["product"]),
            ("home", "/", names["home"]),
        ):
            result = measure(
                base + path, args=args, server_pid=gunicorn.pid, expect=expect
            )
            report["pages"][name] = result
            print(
                f"{name} {path}: {result['req_per_s']:.1f} req/s, p50 {result['p50_ms']:.1f} ms, "
                f"p99 {result['p99_ms']:.1f} ms, first GET {result['first_status']}, "
                f"non-2xx/3xx {result['non_2xx_3xx']}, socket errors {result['socket_errors']}",
                flush=True,
            )
    finally:
        gunicorn.stop()
        if redis_url:
            benchlib.redis_purge_prefix(redis_url, env["CACHE_KEY_PREFIX"])

    report["ok"] = all(r["ok"] for r in report["pages"].values())
    benchlib.print_table(
        f"Storefront pages, anonymous (gunicorn {report['server']}, wrk -t1 -c{args.connections} -d{args.duration}s)",
        [
            "page",
            "req/s",
            "p50 ms",
            "p99 ms",
            "non-2xx/3xx",
            "socket errors",
            "app CPU ms/req",
            "pg CPU ms/req",
            "others' CPU",
            "check",
        ],
        [
            [
                f"{name} {r['url'].removeprefix(base)}",
                r["req_per_s"],
                r["p50_ms"],
                r["p99_ms"],
                r["non_2xx_3xx"],
                r["socket_errors"],
                r["cpu_ms_per_request"].get("gunicorn", float("nan")),
                r["cpu_ms_per_request"].get("postgres", float("nan")),
                f"{r['other_cpu_share']:.0%}",
                "ok" if r["ok"] else f"FAIL (first GET {r['first_status']})",
            ]
            for name, r in report["pages"].items()
        ],
        left=1,
    )
    if args.json_path:
        path = Path(args.json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
        print(f"\nwrote {path}")
    print(f"\nverdict: {'all page checks passed' if report['ok'] else 'FAIL'}")
    if not report["ok"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
