"""soak.py's figures and verdict: the per-window sampler (table statistics, CPU shares,
the claim plan), the DB checks, the flatness check and the printed report."""

from __future__ import annotations

import re
from typing import Any

import benchlib
from claim_plan import captured_sql
from claim_plan import explain as explain_rolled_back
from soak_setup import DB_NAME

BUFFERS_RE = re.compile(r"Buffers: shared(?: hit=(\d+))?(?: read=(\d+))?")
TOLERANCE = 0.10  # per-window throughput vs the offered rate
P99_GROWTH = 1.5  # last third vs first third


class Sampler:
    """Table statistics, CPU shares and the claim plan, taken at each window boundary."""

    def __init__(self, sku_id: int) -> None:
        self.sku_id = sku_id
        self.samples: list[dict[str, Any]] = []
        self.worker_pids: list[int] = []  # set by run_workers
        self.vacuums_start = self._stats()["vacuums"]
        self.cpu0 = benchlib.CpuMeter._read()
        self.ours0 = self._our_cpu()

    def _our_cpu(self) -> dict[int, float]:
        pids = [*self.worker_pids, *benchlib.pg_backends(DB_NAME)]
        return {
            pid: cpu
            for pid in pids
            if (cpu := benchlib.proc_cpu_seconds(pid)) is not None
        }

    @staticmethod
    def _stats() -> dict[str, Any]:
        from django.db import connection

        from fulfillment.models import CardCode

        with connection.cursor() as cur:
            cur.execute(
                "SELECT n_live_tup, n_dead_tup, autovacuum_count + vacuum_count, "
                "greatest(last_autovacuum, last_vacuum), "
                "pg_relation_size('cardcode_claim_idx') / 1024, "
                "pg_relation_size(relid) / 1048576 "
                "FROM pg_stat_user_tables WHERE relname = %s",
                [CardCode._meta.db_table],
            )
            names = ("n_live_tup", "n_dead_tup", "vacuums", "last_vacuum")
            return dict(
                zip((*names, "claim_idx_kb", "table_mb"), cur.fetchone(), strict=True)
            )

    def __call__(self, w: int) -> None:
        from django.utils import timezone

        from fulfillment.locks import card_codes_claimable_lock_for_update

        cpu1, ours1 = benchlib.CpuMeter._read(), self._our_cpu()
        total = (cpu1[0] - self.cpu0[0]) or 1  # jiffies over all CPUs
        busy = 1 - (cpu1[1] - self.cpu0[1]) / total
        ours_s = sum(c - self.ours0.get(pid, 0.0) for pid, c in ours1.items())
        ours = ours_s * benchlib.CLK_TCK / total
        steal = (cpu1[2] - self.cpu0[2]) / total
        self.cpu0, self.ours0 = cpu1, ours1
        stats = self._stats()
        now = timezone.now()
        claim = captured_sql(
            lambda: card_codes_claimable_lock_for_update(
                sku_id=self.sku_id, quantity=1, now=now
            )
        )[0]
        plan, exec_ms = explain_rolled_back(*claim)
        found = BUFFERS_RE.search(plan)
        hit, read = found.groups() if found else (0, 0)
        last = stats.pop("last_vacuum")
        self.samples.append(
            {
                "window": w,
                **stats,
                "vacuums": stats["vacuums"] - self.vacuums_start,
                "last_vacuum": last.isoformat(timespec="seconds") if last else None,
                "claim_explain_ms": exec_ms,
                "claim_buffers": int(hit or 0) + int(read or 0),
                "cpu_busy": round(busy, 3),
                "cpu_ours": round(ours, 3),
                "cpu_others": round(max(0.0, busy - ours), 3),
                "cpu_steal": round(steal, 3),
                "our_cpu_s": round(ours_s, 2),
            }
        )
        x = self.samples[-1]
        print(
            f"  window {w} ends: n_dead_tup {x['n_dead_tup']:,}, vacuums {x['vacuums']} "
            f"(last {x['last_vacuum']}), claim plan {x['claim_buffers']} buffers "
            f"{exec_ms:.3f} ms, CPU busy {busy:.0%} (ours {ours:.0%})",
            flush=True,
        )


def db_checks(*, completed: int, initial: int, sample: int = 200) -> dict[str, Any]:
    """What was sold, counted in the database, against what the workers completed."""
    from django.db.models import Count, Q

    from fulfillment import vault
    from fulfillment.models import CardCode
    from orders.models import Order, OrderLine, Payment

    def by_status(model: Any) -> dict[str, int]:
        rows = model.objects.values("status").annotate(n=Count("id"))
        return {r["status"]: r["n"] for r in rows}

    orders, lines, codes = by_status(Order), by_status(OrderLine), by_status(CardCode)
    sold = CardCode.objects.filter(status=CardCode.Status.SOLD)
    sold_lines = sold.values("order_line_id").distinct().count()
    lines_ok = (
        OrderLine.objects.filter(status=OrderLine.Status.DELIVERED)
        .annotate(n=Count("codes", filter=Q(codes__status=CardCode.Status.SOLD)))
        .exclude(n=1)
        .count()
    )
    undecryptable = 0
    for ciphertext, key_id, fp in sold.values_list(
        "ciphertext", "key_id", "fingerprint"
    )[:sample]:
        try:
            plaintext = vault.open_sealed(ciphertext=ciphertext, key_id=key_id)
        except vault.VaultError:
            plaintext = ""
        undecryptable += vault.fingerprint(plaintext) != fp  # never printed
    payments = Payment.objects.count()
    n_sold = codes.get("sold", 0)
    figures = {
        "completed_by_workers": completed,
        "payments": payments,
        "orders_by_status": orders,
        "lines_by_status": lines,
        "codes_by_status": codes,
        "sold_codes_distinct_lines": sold_lines,
        "delivered_lines_without_exactly_one_code": lines_ok,
        "sold_codes_checked_decrypt": min(sample, n_sold),
        "sold_codes_not_decrypting": undecryptable,
    }
    delivered = orders.get("delivered", 0)
    problems = []
    if not completed == payments == delivered == lines.get("delivered", 0) == n_sold:
        problems.append(
            "completed, payments, orders and lines delivered, codes sold differ"
        )
    if sum(orders.values()) != delivered:
        problems.append("orders in a state other than delivered")
    if sold_lines != n_sold or lines_ok:
        problems.append("a code sold twice or a line without its one code")
    if codes.get("reserved", 0):
        problems.append("codes left reserved")
    if codes.get("available", 0) != initial - n_sold:
        problems.append("available codes do not add up")
    if undecryptable:
        problems.append("sold codes that do not decrypt to their fingerprint")
    figures["problems"] = problems
    return figures


def window_rows(
    by_window: dict[int, list[Any]], *, seconds: float, window: float
) -> list[dict[str, Any]]:
    rows = []
    for w, recs in sorted(by_window.items()):
        length = min(window, seconds - w * window)
        claim = [r[1] * 1000 for r in recs]
        rows.append(
            {
                "window": w,
                "seconds": length,
                "completed": len(recs),
                "orders_per_s": len(recs) / length,
                "claim_p50_ms": benchlib.percentile(claim, 50),
                "claim_p99_ms": benchlib.percentile(claim, 99),
                "order_p99_ms": benchlib.percentile([r[2] * 1000 for r in recs], 99),
                "max_lag_ms": max((r[3] * 1000 for r in recs), default=0.0),
            }
        )
    return rows


def flatness(
    rows: list[dict[str, Any]],
    by_window: dict[int, list[Any]],
    *,
    rate: float,
    seconds: float,
    window: float,
) -> dict[str, Any]:
    off = [
        r["window"]
        for r in rows[1:]
        if abs(r["orders_per_s"] - rate) > TOLERANCE * rate
    ]
    start = min(window, seconds)  # the first window is warm-up
    third = (seconds - start) / 3
    recs = [r for w, rs in by_window.items() if w > 0 for r in rs]
    first = [r[1] for r in recs if r[0] < start + third]
    last = [r[1] for r in recs if r[0] >= start + 2 * third]
    p99_first = benchlib.percentile(first, 99) * 1000
    p99_last = benchlib.percentile(last, 99) * 1000
    p99_ok = bool(first and last) and p99_last <= P99_GROWTH * p99_first
    return {
        "windows_off_rate": off,
        "claim_p99_first_third_ms": p99_first,
        "claim_p99_last_third_ms": p99_last,
        "p99_growth": p99_last / p99_first if first and last else None,
        "claims_in_thirds": [len(first), len(last)],  # p99 of a few hundred is noisy
        "ok": not off and p99_ok and len(rows) > 1,
    }


# (header, key of a window row) for the report's table
COLUMNS = (
    ("win", "window"),
    ("orders/s", "orders_per_s"),
    ("claim p50", "claim_p50_ms"),
    ("claim p99", "claim_p99_ms"),
    ("order p99", "order_p99_ms"),
    ("max lag", "max_lag_ms"),
    ("dead tup", "n_dead_tup"),
    ("vacuums", "vacuums"),
    ("claim idx KB", "claim_idx_kb"),
    ("plan bufs", "claim_buffers"),
    ("plan ms", "claim_explain_ms"),
    ("CPU ms/order", "cpu_ms_per_order"),
)


def print_report(report: dict[str, Any]) -> None:
    benchlib.print_table(
        f"Soak: {report['offered_rate']} orders/s offered, {report['processes']} "
        "processes (latencies in ms; CPU: machine busy / ours / others)",
        [h for h, _ in COLUMNS] + ["CPU"],
        [
            [r.get(key, "-") for _, key in COLUMNS]
            + [
                "/".join(
                    f"{r.get(k, 0):.0%}" for k in ("cpu_busy", "cpu_ours", "cpu_others")
                )
            ]
            for r in report["windows"]
        ],
    )
    flat = report["flatness"]
    print(
        f"\nflat: {flat['ok']} (windows after the first off the rate by >{TOLERANCE:.0%}: "
        f"{flat['windows_off_rate'] or 'none'}; claim p99 first third "
        f"{flat['claim_p99_first_third_ms']:.1f} ms, last third "
        f"{flat['claim_p99_last_third_ms']:.1f} ms, limit x{P99_GROWTH}; claims in "
        f"those thirds: {flat['claims_in_thirds']})"
    )
    settings = report["autovacuum"]
    print(
        f"autovacuum emulated: {settings['emulated']}; runs: {settings.get('emulated_vacuums')}"
    )
    checks = report["db_checks"]
    print(
        "DB checks: "
        + ", ".join(f"{k}={v}" for k, v in checks.items() if k != "problems")
    )
    print(f"problems: {report['problems'] or 'none'}")
    print(f"\n{report['summary']}")
