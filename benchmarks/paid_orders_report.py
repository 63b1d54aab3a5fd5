"""checkout_paid_orders.py's tables: the app against the raw baseline, the rush, the
stock test, and how to read the CPU columns.
"""

from __future__ import annotations

import json
from typing import Any

import benchlib
from loadgen_raw import RAW_ROUND_TRIPS
from paid_orders_setup import STOCK_TEST_CLIENTS


def _cpu_cells(r: dict[str, Any]) -> list[Any]:
    ms = r["cpu_ms_per_order"]
    return [
        ms["gunicorn"],
        ms["postgres"],
        ms.get("redis", 0.0),
        ms["loadgen"],
        f"{r['busy_before']:.0%}",
        f"{r['other_cpu_share']:.0%}",
        f"{r['system_cpu_steal']:.0%}",
    ]


CPU_HEADERS = [
    "app CPU ms/order",
    "pg CPU ms/order",
    "redis CPU ms/order",
    "loadgen CPU ms/order",
    "busy before",
    "others' CPU",
    "steal",
]


def print_report(report: dict[str, Any], concurrencies: list[int]) -> None:
    raw_by_c = {r["clients"]: r for r in report["raw"]}
    rows = []
    for r in report["app"]:
        raw = raw_by_c.get(r["clients"])
        errors = sum(v for k, v in r["outcomes"].items() if k != "paid")
        rows.append(
            [
                r["clients"],
                r["paid"],
                errors,
                r["paid_per_s"],
                r["latency_p50_ms"],
                r["latency_p99_ms"],
                r["step_p50_ms"].get("checkout"),
                r["step_p50_ms"].get("pay_page"),
                r["step_p50_ms"].get("notify"),
                *_cpu_cells(r),
                raw["paid_per_s"] if raw else float("nan"),
                f"{r['paid_per_s'] / raw['paid_per_s']:.1%}" if raw else "-",
                "ok" if r["verify"]["ok"] else "FAIL",
            ]
        )
    benchlib.print_table(
        f"App: paid orders through HTTP (gunicorn {report['server']}, REDIS_URL {'set' if report['redis'] else 'unset'})",
        [
            "clients",
            "paid",
            "errors",
            "orders/s",
            "p50 ms",
            "p99 ms",
            "checkout p50",
            "pay page p50",
            "notify p50",
            *CPU_HEADERS,
            "raw orders/s",
            "app/raw",
            "DB check",
        ],
        rows,
    )
    benchlib.print_table(
        f"Baseline: the same SQL with raw psycopg2 ({RAW_ROUND_TRIPS} round trips per order, one connection per client)",
        [
            "clients",
            "paid",
            "errors",
            "orders/s",
            "p50 ms",
            "p99 ms",
            *CPU_HEADERS,
            "DB check",
        ],
        [
            [
                r["clients"],
                r["paid"],
                sum(v for k, v in r["outcomes"].items() if k != "paid"),
                r["paid_per_s"],
                r["latency_p50_ms"],
                r["latency_p99_ms"],
                *_cpu_cells(r),
                "ok" if r["verify"]["ok"] else "FAIL",
            ]
            for r in report["raw"]
        ],
    )
    rush = report.get("rush")
    if rush:
        v = rush["verify"]
        benchlib.print_table(
            f"Rush ({rush.get('driver', 'python')}): {rush['clients']} clients, {rush['attempts']} attempts "
            "(latency: the checkout POST)",
            [
                "paid",
                "sold out",
                "other",
                "elapsed s",
                "attempts/s",
                "p50 ms",
                "p99 ms",
                "delivered",
                "codes sold",
                "sold twice",
                "DB check",
            ],
            [
                [
                    rush["outcomes"].get("paid", 0),
                    rush["outcomes"].get("sold_out", 0),
                    json.dumps(
                        {
                            k: n
                            for k, n in rush["outcomes"].items()
                            if k not in ("paid", "sold_out")
                        }
                    ),
                    rush["elapsed_s"],
                    rush["attempts_per_s"],
                    rush["checkout_p50_ms"],
                    rush["checkout_p99_ms"],
                    v["orders_delivered"],
                    v["codes_sold"],
                    v["codes_sold_twice"],
                    "ok"
                    if v["ok"] and all(rush["checks"].values())
                    else "FAIL "
                    + "; ".join(
                        [
                            *v["problems"],
                            *(k for k, ok in rush["checks"].items() if not ok),
                        ]
                    ),
                ]
            ],
        )
    stock = report.get("stock_test")
    if stock:
        rows = []
        for label, r in (
            (
                "seeded pool",
                next(
                    (a for a in report["app"] if a["clients"] == STOCK_TEST_CLIENTS),
                    None,
                ),
            ),
            ("padded pool", stock),
        ):
            if r is None:
                continue
            rows.append(
                [
                    label,
                    r.get("available_before", "-"),
                    r["clients"],
                    r["paid_per_s"],
                    r["step_p50_ms"].get("checkout"),
                    r["cpu_ms_per_order"]["gunicorn"],
                    r["cpu_ms_per_order"]["postgres"],
                    f"{r['other_cpu_share']:.0%}",
                    "ok" if r["verify"]["ok"] else "FAIL",
                ]
            )
        benchlib.print_table(
            "Stock sensitivity: the same run with many more available codes in the SKU",
            [
                "pool",
                "available codes",
                "clients",
                "orders/s",
                "checkout p50 ms",
                "app CPU ms/order",
                "pg CPU ms/order",
                "others' CPU",
                "DB check",
            ],
            rows,
        )
    if "email_tasks_purged" in report:
        print(
            f"\ndelivery-email tasks left in Redis and purged: {report['email_tasks_purged']}"
        )
    print(
        "\nCPU columns: CPU seconds per paid order of gunicorn (master + workers), of the PostgreSQL"
        "\nbackends serving the benchmark database, and of the load generator; 'busy before' is the"
        "\nmachine's CPU use just before the run, 'others' CPU' the share of both cores used by"
        "\nprocesses that are not ours during it (other work on a shared machine), 'steal' the"
        "\nshare the hypervisor gave to other guests."
    )
