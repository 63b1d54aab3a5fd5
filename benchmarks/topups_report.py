"""topups.py's printed table."""

from __future__ import annotations

from typing import Any

import benchlib


def print_report(report: dict[str, Any]) -> None:
    rows = []
    for r in report["runs"]:
        ms = r["cpu_ms_per_topup"]
        lat = r.get("latency", {})
        q = r["quiet"]
        rows.append(
            [
                r["latency_ms"],
                f"{r['pool']} -c {r['concurrency']}",
                r["n"],
                r["completed_per_s"],
                r["placed_per_s"],
                ms.get("worker", float("nan")),
                ms.get("gunicorn", float("nan")),
                ms.get("simulator", float("nan")),
                ms.get("postgres", 0.0) + ms.get("postgres_exited", 0.0),
                r["db_sessions_per_topup"],
                ms.get("redis", float("nan")),
                r.get("worker_pss_mib", float("nan")),
                r["latency_rate"],
                lat.get("paid_to_accepted", {}).get("p50", float("nan")),
                lat.get("paid_to_accepted", {}).get("p95", float("nan")),
                lat.get("paid_to_delivered", {}).get("p50", float("nan")),
                lat.get("paid_to_delivered", {}).get("p95", float("nan")),
                f"{q['loadavg'][0]:.2f}" if q.get("loadavg") else "-",
                f"{r['other_cpu_share']:.0%}",
                "ok" if r["verify"]["ok"] else "FAIL",
            ]
        )
    benchlib.print_table(
        f"Top-ups through the worker (gunicorn {report['server']}, broker Redis"
        + (
            f", CELERY_DB_REUSE_MAX={report['args']['db_reuse_max']})"
            if report["args"]["db_reuse_max"]
            else ")"
        ),
        [
            "supplier ms",
            "worker",
            "top-ups",
            "completed/s",
            "accepted/s",
            "worker CPU ms",
            "gunicorn CPU ms",
            "simulator CPU ms",
            "pg CPU ms",
            "connections/top-up",
            "redis CPU ms",
            "worker MiB",
            "notifies/s",
            "paid→accepted p50",
            "p95",
            "paid→delivered p50",
            "p95",
            "load before",
            "others' CPU",
            "checks",
        ],
        rows,
    )
    print(
        "\ncompleted/s: top-ups from the first claim to the last line delivered (by the"
        "\nsimulator's callback through gunicorn); accepted/s: to the last supplier accept."
        "\nCPU columns: CPU ms per top-up during the drain (Redis is shared with others;"
        "\npg: our live backends plus every backend that exited meanwhile, connections/top-up:"
        "\nconnections opened to the database per top-up)."
        "\nworker MiB: proportional set size of the worker and its pool. Latency columns (ms): top-ups"
        "\npaid one by one over HTTP at 'notifies/s', from the Payment row to the worker"
        "\nholding the supplier's accept, and to the line delivered."
    )
