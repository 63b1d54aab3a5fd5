"""import_codes.py's last tables: peak memory, ratios, where the import's and the
re-import's time goes, and the new-code import's pipeline (all read from the report)."""

from __future__ import annotations

from typing import Any

import benchlib


def print_tail(report: dict[str, Any]) -> None:
    """Peak memory, ratios, where the time goes and the pipeline, from the report."""
    ratios = report["ratios"]
    breakdown = report["breakdown"]
    parse_s = breakdown["parse"]
    fingerprint_s = breakdown["fingerprint"]
    seal_s = breakdown["seal_known_fingerprint"]
    db_time = breakdown["db_execute"]
    db_select = breakdown["db_execute_select"]
    service_s = report["runs"]["card_codes_import (new codes)"]["seconds"]
    dup_s = report["runs"]["card_codes_import (same file again)"]["seconds"]
    rss_rows = [
        [
            f"{r['codes']:,} new codes",
            r["file_bytes"] / 2**20,
            r["rss_before_import_kib"] / 1024,
            r["rss_self_kib"] / 1024,
            r["rss_children_kib"] / 1024,
            r["peak_rss_mib"],
            r["codes"] / r["seconds"],
        ]
        for r in (report["peak_rss"], report.get("peak_rss_million"))
        if r
    ]
    benchlib.print_table(
        "Peak memory of one import in a fresh process (MiB; getrusage ru_maxrss)",
        [
            "file",
            "file MiB",
            "before import",
            "peak, importer",
            "peak, largest sealer (shared pages incl.)",
            "peak, sum",
            "codes/s",
        ],
        rss_rows,
    )
    benchlib.print_table(
        "Ratios (throughput, same run)",
        ["comparison", "ratio"],
        [[k, f"{v:.1%}"] for k, v in ratios.items()],
    )
    new_rest = service_s - parse_s - fingerprint_s - seal_s - db_time["new"]
    dup_rest = dup_s - parse_s - fingerprint_s - db_time["again"]
    benchlib.print_table(
        "Where card_codes_import's time goes (new codes)",
        ["part", "seconds", "share"],
        [
            ["codefile.scan", parse_s, f"{parse_s / service_s:.0%}"],
            [
                "vault.fingerprints (HMAC), every code",
                fingerprint_s,
                f"{fingerprint_s / service_s:.0%}",
            ],
            [
                "Fernet + mask, new codes, one process (the workers share it)",
                seal_s,
                f"{seal_s / service_s:.0%}",
            ],
            [
                "waiting in cursor.execute: fingerprint look-ups (SELECT)",
                db_select["new"],
                f"{db_select['new'] / service_s:.0%}",
            ],
            [
                "waiting in cursor.execute: the rest (batch row and counts)",
                db_time["new"] - db_select["new"],
                f"{(db_time['new'] - db_select['new']) / service_s:.0%}",
            ],
            [
                "the rest: COPY, waiting on the sealers, COMMIT",
                new_rest,
                f"{new_rest / service_s:.0%}",
            ],
        ],
    )
    pipe = report["pipeline"]
    benchlib.print_table(
        "The new-code import's pipeline (wall and CPU seconds, this run)",
        ["figure", "seconds"],
        [
            ["wall", pipe["wall_s"]],
            [
                "first sealed part handed to the COPY (tree with CopyStream)",
                pipe.get("first_data_s", "-"),
            ],
            [f"COPYs ({pipe['copies']:.0f}), copier thread", pipe["copy_s"]],
            [
                "  of which waiting for sealed parts (tree with CopyStream)",
                pipe["copy_wait_s"],
            ],
            [
                "after the stream: batch counts, COMMIT (deferred FK checks)",
                pipe["tail_s"],
            ],
            ["CPU, this process (read, HMAC, copier thread)", pipe["cpu_main_s"]],
            ["CPU, sealing processes", pipe["cpu_sealers_s"]],
            ["CPU, the import's PostgreSQL backend", pipe["cpu_postgres_s"]],
            [
                "CPU, PostgreSQL, raw COPY into the LIKE table (baseline)",
                pipe["cpu_postgres_copy_like_s"],
            ],
            [
                "CPU, PostgreSQL, raw COPY into fulfillment_cardcode",
                pipe["cpu_postgres_copy_cardcode_s"],
            ],
        ],
    )
    benchlib.print_table(
        "Where the re-import's time goes (every code a duplicate)",
        ["part", "seconds", "share"],
        [
            ["codefile.scan", parse_s, f"{parse_s / dup_s:.0%}"],
            [
                "vault.fingerprints (HMAC), every code",
                fingerprint_s,
                f"{fingerprint_s / dup_s:.0%}",
            ],
            [
                "waiting in cursor.execute: fingerprint look-ups (SELECT)",
                db_select["again"],
                f"{db_select['again'] / dup_s:.0%}",
            ],
            [
                "waiting in cursor.execute: the rest (batch row, count, update)",
                db_time["again"] - db_select["again"],
                f"{(db_time['again'] - db_select['again']) / dup_s:.0%}",
            ],
            [
                "the rest: the look-up queries' SQL, the fetched rows, COMMIT",
                dup_rest,
                f"{dup_rest / dup_s:.0%}",
            ],
        ],
    )
