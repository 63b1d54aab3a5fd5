"""The report of benchmarks/bench_all.py: issue 6's ratio table, the correctness
checks of every run and the machine's state, from the phases' JSON reports."""

from __future__ import annotations

import json
from typing import Any

import benchlib


def import_figures(report: dict[str, Any]) -> dict[str, float]:
    """New codes per second through the service and the COPY baseline, read tolerantly
    (the script keeps its runs by descriptive name)."""
    runs = report.get("runs") or {}

    def rate(run: dict[str, Any]) -> float:
        if "rows_per_s" in run:
            return float(run["rows_per_s"])
        codes = run.get("imported") or report.get("codes") or 0
        return codes / run["seconds"] if run.get("seconds") else float("nan")

    new = copy = float("nan")
    for name, run in runs.items():
        low = name.lower()
        if "new codes" in low and "dry" not in low and new != new:
            new = rate(run)
        elif "copy" in low and "like" in low and "conflict" not in low and copy != copy:
            copy = rate(run)
    new = float(report.get("codes_per_s", new))
    copy = float(report.get("copy_rows_per_s", copy))
    return {"codes_per_s": new, "copy_rows_per_s": copy}


# --- the report --------------------------------------------------------------------

NAN = float("nan")
# Issue 6's table, measured on the machine the goals were set on: the same
# benchmark's raw-SQL baseline (8 clients) and the floor's minimal purchase view.
# The server-CPU goal (<= 12 ms per paid order) was written against that
# machine's speed; normalized_cpu_ms scales a run's figure to it.
ISSUE_RAW_ORDERS_PER_S = 537.0
ISSUE_FLOOR_BUY_REQ_PER_S = 898.0
CPU_GOAL_MS = 12.0


def normalized_cpu_ms(cpu_ms: float, rate: float, issue_rate: float) -> float:
    """Server CPU per paid order as on the issue's machine (an estimate).

    A baseline that does `rate` per second here did `issue_rate` there: CPU work
    of the same size takes issue_rate / rate times as long here, so the run's
    milliseconds times rate / issue_rate are what the issue's machine would have
    spent. E.g. 23.7 ms with the raw baseline at 250 orders/s: 23.7 x 250 / 537
    = 11.1 ms. NaN when a figure is missing.
    """
    if not (cpu_ms == cpu_ms and rate == rate and rate > 0 and issue_rate > 0):
        return NAN
    return cpu_ms * rate / issue_rate


def _get(data: Any, *keys: str, default: Any = NAN) -> Any:
    """data[k1][k2]..., or `default` when a level is missing (a phase that failed)."""
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return default
        data = data[key]
    return NAN if data is None else data


def _ratio(a: float, b: float) -> float:
    return a / b if a == a and b == b and b else NAN


def _n(value: float, spec: str = ",.0f") -> str:
    """A figure, or '-' where a phase left none."""
    return format(value, spec) if value == value else "-"


def ratio_rows(
    report: dict[str, Any], *, only: set[str]
) -> tuple[list[list[Any]], bool]:
    """Issue 6's table: path, Kaquan, baseline, ratio, goal, verdict."""
    phases = report["phases"]
    floor = phases.get("floor", {})
    rows: list[list[Any]] = []
    estimates: set[int] = set()  # rows whose verdict --strict does not count

    def add(
        path: str,
        kaquan: str,
        base: str,
        ratio: float,
        goal: str,
        ok: bool,
        *,
        measured: float | None = None,
        estimate: bool = False,
    ) -> None:
        """`measured`: the figure the goal judges (the ratio unless given); '-' if none.
        `estimate`: a normalized figure; its verdict reads "est. PASS"/"est. FAIL"
        and does not count among the goals met (--strict)."""
        known = ratio if measured is None else measured
        verdict = ("PASS" if ok else "FAIL") if known == known else "-"
        if estimate:
            estimates.add(len(rows))
            verdict = f"est. {verdict}" if known == known else verdict
        rows.append([path, kaquan, base, _n(ratio, ".0%"), goal, verdict])

    catalog = _get(floor, "catalog", "req_per_s")
    pages = (("product", "product page /p/<slug>/, anonymous"), ("home", "home /"))
    for name, label in pages if "pages" in only else ():
        page = _get(phases, "pages", "pages", name, default={})
        rps = _get(page, "req_per_s")
        ratio = _ratio(rps, catalog)
        add(
            label,
            f"{_n(rps)} req/s, p99 {_n(_get(page, 'p99_ms'))} ms",
            f"floor catalog {_n(catalog)} req/s",
            ratio,
            ">= 70 %",
            ratio >= 0.70,
        )

    if "checkout" in only:
        checkout = phases.get("checkout", {})
        rush = checkout.get("rush", {})
        ping = _get(floor, "ping", "req_per_s")
        attempts_s, p99 = _get(rush, "attempts_per_s"), _get(rush, "checkout_p99_ms")
        ratio = _ratio(attempts_s, ping)
        sizes = report["sizes"]
        add(
            f"rush: {sizes['rush_attempts']:,} buyers on {sizes['rush_codes']} codes, "
            f"{sizes['rush_clients']} at a time",
            f"{_n(attempts_s)} attempts/s, p99 {_n(p99)} ms",
            f"floor ping {_n(ping)} req/s",
            ratio,
            ">= 50 %, p99 < 1 s",
            ratio >= 0.5 and p99 < 1000,
        )
        app = next((r for r in checkout.get("app", []) if r.get("clients") == 8), {})
        raw = next((r for r in checkout.get("raw", []) if r.get("clients") == 8), {})
        orders_s, raw_s = _get(app, "paid_per_s"), _get(raw, "paid_per_s")
        buy = _get(floor, "buy", "req_per_s")
        ratio = _ratio(orders_s, raw_s)
        add(
            "paid orders (checkout -> pay page -> notify), 8 clients",
            f"{_n(orders_s)} orders/s",
            f"raw SQL {_n(raw_s)} orders/s "
            f"(floor buy {_n(buy)} req/s: {_n(_ratio(orders_s, buy), '.0%')})",
            ratio,
            ">= 30 % of raw",
            ratio >= 0.30,
        )
        cpu = _get(app, "server_cpu_ms_per_order")
        add(
            "paid orders: server CPU per order",
            f"{_n(cpu, '.1f')} ms (gunicorn "
            f"{_n(_get(app, 'cpu_ms_per_order', 'gunicorn'), '.1f')} + PostgreSQL "
            f"{_n(_get(app, 'cpu_ms_per_order', 'postgres'), '.1f')})",
            f"raw SQL: PostgreSQL {_n(_get(raw, 'cpu_ms_per_order', 'postgres'), '.1f')} ms",
            NAN,
            "<= 12 ms",
            cpu <= CPU_GOAL_MS,
            measured=cpu,
        )
        # The same figure scaled to the machine the goal was set on, by two
        # baselines of this run (docs/PERFORMANCE.md, "make bench: the server CPU
        # normalized"): estimates, next to the absolute row, not instead of it.
        for name, rate, unit, issue_rate in (
            ("raw SQL", raw_s, "orders/s", ISSUE_RAW_ORDERS_PER_S),
            ("floor buy", buy, "req/s", ISSUE_FLOOR_BUY_REQ_PER_S),
        ):
            scaled = normalized_cpu_ms(cpu, rate, issue_rate)
            add(
                f"paid orders: server CPU per order, NORMALIZED by {name} "
                "(estimate for the issue's machine)",
                f"{_n(scaled, '.1f')} ms = {_n(cpu, '.1f')} ms x {_n(rate)} / "
                f"{issue_rate:,.0f}"
                if scaled == scaled
                else "-",
                f"{name} {_n(rate)} {unit} here, {issue_rate:,.0f} on the issue's machine",
                NAN,
                "<= 12 ms (normalized)",
                scaled <= CPU_GOAL_MS,
                measured=scaled,
                estimate=True,
            )

    if "import" in only:
        imp = import_figures(phases.get("import", {}))
        ratio = _ratio(imp["codes_per_s"], imp["copy_rows_per_s"])
        add(
            f"import {report['sizes']['import_codes']:,} new codes",
            f"{_n(imp['codes_per_s'])} codes/s",
            f"COPY into a cardcode-like table {_n(imp['copy_rows_per_s'])} rows/s",
            ratio,
            ">= 60 %",
            ratio >= 0.60,
        )
    judged = [r for i, r in enumerate(rows) if i not in estimates]
    return rows, all(r[5] == "PASS" for r in judged)


def check_rows(
    report: dict[str, Any], *, only: set[str], soak: bool
) -> list[list[Any]]:
    """What every run sold and answered: (run, check, ok, detail)."""
    phases = report["phases"]
    rows: list[list[Any]] = []
    for name in report["failed_phases"]:
        rows.append([name, "phase finished", False, "exited non-zero: see its log"])
    if "floor" in only:
        got = sorted(phases.get("floor", {}))
        rows.append(
            [
                "floor",
                "ping, catalog, buy measured",
                set(got) >= {"ping", "catalog", "buy"},
                ", ".join(got),
            ]
        )
    if "pages" in only:
        for name, page in (_get(phases, "pages", "pages", default={}) or {}).items():
            rows.append(
                [
                    f"page {name}",
                    "first GET 200 with the name",
                    page.get("first_status") == 200 and page.get("first_shows_name"),
                    f"HTTP {page.get('first_status')}",
                ]
            )
            rows.append(
                [
                    f"page {name}",
                    "no non-2xx, no socket error",
                    page.get("non_2xx_3xx") == 0 and page.get("socket_errors") == 0,
                    f"{page.get('non_2xx_3xx')} non-2xx/3xx, {page.get('socket_errors')} socket errors of {page.get('requests')}",
                ]
            )
        if not phases.get("pages"):
            rows.append(["pages", "report written", False, "no JSON"])
    if "checkout" in only:
        checkout = phases.get("checkout", {})
        for run in ("app", "raw"):
            for r in checkout.get(run, []):
                v = r.get("verify", {})
                rows.append(
                    [
                        f"paid orders ({run}, {r.get('clients')} clients)",
                        "delivered = paid = codes sold, no code twice, none reserved",
                        bool(v.get("ok")),
                        f"{r.get('paid')} paid, outcomes {r.get('outcomes')} {'; '.join(v.get('problems', []))}",
                    ]
                )
        rush = checkout.get("rush", {})
        v = rush.get("verify", {})
        outcomes = rush.get("outcomes", {})
        details = {
            "sold_exactly_stock": f"{outcomes.get('paid')} paid, {v.get('codes_sold')} "
            f"codes sold, {v.get('orders_delivered')} delivered of "
            f"{report['sizes']['rush_codes']} codes",
            "no_code_twice": f"{v.get('codes_sold_twice')} codes sold twice",
            "nothing_reserved": f"{v.get('codes_reserved')} codes left reserved",
            "every_buyer_answered": f"{rush.get('attempts')} answered",
        }
        for check, ok in (rush.get("checks") or {}).items():
            detail = details.get(check, json.dumps(outcomes))
            rows.append(["rush", check.replace("_", " "), ok, detail])
        if not rush:
            rows.append(["rush", "ran", False, "no rush in the report"])
    if "import" in only:
        imp = import_figures(phases.get("import", {}))
        rows.append(
            [
                "import",
                "counts as expected, figures read",
                "import" not in report["failed_phases"]
                and imp["codes_per_s"] == imp["codes_per_s"],
                "the script exits non-zero on unexpected counts",
            ]
        )
    if soak:
        data = phases.get("soak", {})
        rows.append(
            [
                "soak",
                "ok",
                data.get("ok") is True,
                str(data.get("summary", "no summary")),
            ]
        )
    return rows


def print_summary(
    report: dict[str, Any],
    table: list[list[Any]],
    checks: list[list[Any]],
    *,
    quick: bool,
) -> None:
    benchlib.print_table(
        "Issue 6: Kaquan beside the floor and baselines of the same run"
        + (" (--quick: short phases, not figures to record)" if quick else ""),
        ["path", "Kaquan", "floor / baseline, same run", "ratio", "goal", "verdict"],
        table,
        left=6,
    )
    benchlib.print_table(
        "What every run sold and answered",
        ["run", "check", "ok", "detail"],
        [[r, c, "ok" if ok else "FAIL", d] for r, c, ok, d in checks],
        left=4,
    )
    phases = report["phases"]
    shares = []
    for name in ("product", "home"):
        page = _get(phases, "pages", "pages", name, default={})
        if page:
            shares.append(
                [
                    f"page {name}",
                    page.get("other_cpu_share"),
                    page.get("system_cpu_steal"),
                ]
            )
    checkout = phases.get("checkout", {})
    for label, r in [
        *((f"paid app c={r.get('clients')}", r) for r in checkout.get("app", [])),
        *((f"paid raw c={r.get('clients')}", r) for r in checkout.get("raw", [])),
        *((("rush", checkout["rush"]),) if checkout.get("rush") else ()),
    ]:
        shares.append([label, r.get("other_cpu_share"), r.get("system_cpu_steal")])
    benchlib.print_table(
        "Machine: others' CPU (share of both cores used by processes not ours) and steal",
        ["run", "others' CPU", "steal"],
        [[n, _pct(o), _pct(s)] for n, o, s in shares],
        left=1,
    )
    busy = ", ".join(f"{k} {v['busy']:.0%}" for k, v in report["busy_before"].items())
    app, scripts = report["app"], report["scripts"]
    print(
        f"\nbusy before each phase: {busy}"
        f"\nseconds per phase: {report['phase_seconds']}"
        f"\nload average: start {report['loadavg_start']}, end {report['loadavg_end']}"
        f"\napp measured: {app['root']} at {app['head']} ({'dirty: ' + str(app['changed_files']) + ' files changed' if app['dirty'] else 'clean'})"
        + (
            f"\nscripts: {scripts['root']} at {scripts['head']} ({'dirty' if scripts['dirty'] else 'clean'})"
            if scripts["root"] != app["root"]
            else ""
        )
        + f"\nmachine: {report['machine']['nproc']} cores, PostgreSQL {report['machine']['postgres']}, Python {report['machine']['python']}"
    )
    print(f"\nverdict: {'all checks passed' if report['ok'] else 'FAIL'}")


def _pct(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, int | float) else "-"
