"""Codes imported per second through the real service, beside a raw COPY.

    .venv/bin/python benchmarks/import_codes.py [--codes 100000] [--workers N] [--million] [--json]

1. Recreate kaquan_bench_import, migrate, create a card-code SKU.
2. Write a TXT file of --codes random 16-character codes.
3. Import it through fulfillment.services.card_codes_import (streamed in chunks:
   HMAC-fingerprint each chunk, look up the fingerprints the SKU already holds,
   Fernet-encrypt only the new codes in --workers processes, COPY them in; one
   transaction), then import the same file again (every code a duplicate), then a dry
   run of a new file (the admin's preview).
4. The same through `manage.py import_codes` (a new process: includes Django start-up)
   into a second SKU.
4b. Peak memory: the same file imported by a fresh process of this script (Django
   set up, then the file read and imported, nothing else) into a fourth SKU; it
   reports its own peak RSS (VmHWM: ru_maxrss would carry over this script's peak
   through exec) and that of its sealing processes (getrusage RUSAGE_CHILDREN
   ru_maxrss: the largest of them, pages shared with the importer included). With
   --million, the same for a file of 1,000,000 codes: memory is flat when the two
   peaks are close.
5. In the same run, raw COPY of the same number of rows (100-character ciphertext-like
   text, 64-hex fingerprints) into (a) a bare table with no index, (b) a table
   LIKE fulfillment_cardcode INCLUDING ALL (its indexes, unique and check constraints;
   no foreign keys) and (c) fulfillment_cardcode itself (a third SKU); then the
   duplicate re-import done raw: COPY to a temp table and
   INSERT ... SELECT ... ON CONFLICT DO NOTHING into (b).
6. A breakdown of the service's time: parsing, fingerprinting (HMAC), sealing the new
   codes (Fernet + mask), each timed in one process over the whole file, so their
   sum can exceed the import when the sealing runs in parallel; waiting on PostgreSQL
   in cursor.execute (the fingerprint look-ups; the COPY does not go through
   cursor.execute), the rest (the COPY, waiting on the sealing processes, the COMMIT).
7. The new-code import's pipeline, measured around that first import (PipelineProbe):
   CPU seconds of this process, of the sealing processes and of the import's
   PostgreSQL backend (beside the backend CPU of the raw COPYs of step 5), the COPYs'
   time on the copier thread and how much of it waited for sealed parts, and the
   tail after the stream (batch counts, COMMIT). On a shared machine these say more
   than the wall times: which side waited for which.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import benchlib
from import_codes_probe import PipelineProbe
from import_codes_raw import copy_like_once, raw_copy, write_codes
from import_codes_report import print_tail

DB_NAME = "kaquan_bench_import"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--codes", type=int, default=100_000)
    p.add_argument(
        "--skip-cli", action="store_true", help="skip the manage.py import_codes run"
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="sealing processes for the import (default: the service's, one per CPU)",
    )
    p.add_argument(
        "--db-name",
        default=DB_NAME,
        help=f"benchmark database, recreated (default {DB_NAME}; must start kaquan_bench)",
    )
    p.add_argument(
        "--million",
        action="store_true",
        help="also measure the peak RSS of importing 1,000,000 codes (~30 s more)",
    )
    p.add_argument(
        "--pairs",
        type=int,
        default=0,
        help="N more (import, COPY) pairs, in turn, each on a new file; the "
        "figures make bench reads become the medians (the COPY alone swings "
        "by half between runs here)",
    )
    p.add_argument(
        "--json", action="store_true", help="also write benchmarks/results/*.json"
    )
    # Internal: the fresh process of step 4b.
    p.add_argument(
        "--rss-child", nargs=2, metavar=("SKU", "FILE"), help=argparse.SUPPRESS
    )
    return p.parse_args()


def rss_child(sku_code: str, path: str, workers: int | None) -> None:
    """Step 4b, in a fresh process: import one file, print peak RSS as JSON."""
    benchlib.django_setup(dict(os.environ))

    from catalog.models import Sku
    from fulfillment.services import card_codes_import

    sku = Sku.objects.get(code=sku_code)
    before = _proc_status_kib("VmRSS")
    content = Path(path).read_bytes()
    t0 = time.perf_counter()
    result = card_codes_import(
        sku=sku, content=content, file_name=Path(path).name, actor=None, workers=workers
    )
    seconds = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "seconds": seconds,
                "imported": result.imported,
                "file_bytes": len(content),
                "rss_before_import_kib": before,
                # This process's peak since exec. Not ru_maxrss: Linux carries a
                # process's maxrss across execve, so a child started by the
                # benchmark would report the benchmark's own peak.
                "rss_self_kib": _proc_status_kib("VmHWM"),
                "ru_maxrss_self_kib": resource.getrusage(
                    resource.RUSAGE_SELF
                ).ru_maxrss,
                # The largest sealing process (KiB on Linux). Forked from this one,
                # it counts the pages it shares with it too: an upper bound.
                "rss_children_kib": resource.getrusage(
                    resource.RUSAGE_CHILDREN
                ).ru_maxrss,
            }
        )
    )


def _proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise SystemExit(f"no {field} in /proc/self/status")


def measure_rss(
    env: dict[str, str], *, sku_code: str, path: Path, workers: int | None
) -> dict[str, Any]:
    """Run step 4b for one file; returns the child's figures plus the total in MiB."""
    cmd = [benchlib.PYTHON, __file__, "--rss-child", sku_code, str(path)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    done = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"peak-RSS import failed:\n{done.stdout}\n{done.stderr}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    out["codes"] = out["imported"]
    out["peak_rss_mib"] = (out["rss_self_kib"] + out["rss_children_kib"]) / 1024
    return out


def main() -> None:
    args = parse_args()
    if args.rss_child:
        rss_child(*args.rss_child, args.workers)
        return
    machine = benchlib.machine_info()
    print(f"machine: {machine}")
    env = benchlib.fresh_django(db_name=args.db_name)

    from decimal import Decimal

    from django.db import connection

    from fulfillment import codefile, vault
    from fulfillment.models import CardCode, CodeBatch
    from fulfillment.services import card_codes_import

    price = Decimal("30.00")
    skus = benchlib.create_skus(
        ["IMPORT-SVC", "IMPORT-CLI", "IMPORT-COPY", "IMPORT-RSS", "IMPORT-RSS-1M"]
        + [f"IMPORT-PAIR-{i}" for i in range(args.pairs)],
        platform_slug="import",
        price=price,
    )

    benchlib.RESULTS.mkdir(parents=True, exist_ok=True)
    path = benchlib.RESULTS / f"import-codes-{args.codes}.txt"
    content = write_codes(path, args.codes)
    rows: list[list[Any]] = []
    report: dict[str, Any] = {
        "machine": machine,
        "codes": args.codes,
        "workers": args.workers,
        "runs": {},
    }

    def record(name: str, seconds: float, imported: int, duplicates: int) -> None:
        report["runs"][name] = {
            "seconds": seconds,
            "imported": imported,
            "duplicates": duplicates,
            "rows_per_s": args.codes / seconds,
        }
        rows.append(
            [name, args.codes, imported, duplicates, seconds, args.codes / seconds]
        )

    # 3. the service, in-process: first import, then the same file again
    db_time: dict[str, float] = {}
    busy_before = benchlib.wait_for_quiet()
    meter = benchlib.CpuMeter().__enter__()

    db_select: dict[str, float] = {}

    def timed_import(
        probe: PipelineProbe | None = None,
    ) -> tuple[Any, float, float, float]:
        """(result, wall seconds, seconds in cursor.execute, of which fingerprint look-ups).

        The COMMIT does not go through cursor.execute: it is in neither figure.
        """
        waited = {"all": 0.0, "select": 0.0}

        def wrapper(execute: Any, sql: str, params: Any, many: bool, ctx: Any) -> Any:
            t = time.perf_counter()
            try:
                return execute(sql, params, many, ctx)
            finally:
                spent = time.perf_counter() - t
                waited["all"] += spent
                if "= ANY(" in sql:  # the fingerprint look-ups
                    waited["select"] += spent

        t0 = time.perf_counter()
        with connection.execute_wrapper(wrapper), probe or contextlib.nullcontext():
            result = card_codes_import(
                sku=skus[0],
                content=content,
                file_name=path.name,
                actor=None,
                workers=args.workers,
            )
        return result, time.perf_counter() - t0, waited["all"], waited["select"]

    probe = PipelineProbe()
    first, seconds, db_time["new"], db_select["new"] = timed_import(probe)
    record("card_codes_import (new codes)", seconds, first.imported, first.duplicates)
    again, seconds, db_time["again"], db_select["again"] = timed_import()
    record(
        "card_codes_import (same file again)", seconds, again.imported, again.duplicates
    )
    # The admin's preview step runs the service as a dry run on the upload first.
    fresh = "\n".join(secrets.token_hex(8).upper() for _ in range(args.codes)).encode()
    t0 = time.perf_counter()
    preview = card_codes_import(
        sku=skus[0], content=fresh, file_name=path.name, actor=None, dry_run=True
    )
    record(
        "card_codes_import dry run (admin preview), new file",
        time.perf_counter() - t0,
        preview.imported,
        preview.duplicates,
    )
    if (
        first.imported != args.codes
        or again.imported != 0
        or again.duplicates != args.codes
    ):
        raise SystemExit(f"unexpected import counts: first {first}, again {again}")

    # 4. the management command, a new process
    if not args.skip_cli:
        t0 = time.perf_counter()
        workers = ["--workers", str(args.workers)] if args.workers else []
        out = benchlib.manage(
            env, "import_codes", "--sku", skus[1].code, "--file", str(path), *workers
        )
        record(
            "manage.py import_codes (new process)",
            time.perf_counter() - t0,
            int(out.split()[1].rstrip(",")),
            0,
        )

    # 4b. peak RSS of an import in a fresh process (and of 1,000,000 codes)
    benchlib.django_close_connections()
    report["peak_rss"] = measure_rss(
        env, sku_code=skus[3].code, path=path, workers=args.workers
    )
    if args.million:
        million = benchlib.RESULTS / "import-codes-1000000.txt"
        write_codes(million, 1_000_000)
        report["peak_rss_million"] = measure_rss(
            env, sku_code=skus[4].code, path=million, workers=args.workers
        )
        million.unlink()

    # 5. raw COPY in the same run
    copy_batch = CodeBatch.objects.create(sku=skus[2], note="raw COPY")
    raw = raw_copy(
        benchlib.pg_dsn(args.db_name),
        args.codes,
        sku_id=skus[2].id,
        batch_id=copy_batch.id,
    )
    record("COPY into a bare table", raw["copy_bare"], args.codes, 0)
    record("COPY into fulfillment_cardcode itself", raw["copy_cardcode"], args.codes, 0)
    record(
        "COPY into LIKE fulfillment_cardcode INCLUDING ALL",
        raw["copy_like_cardcode"],
        args.codes,
        0,
    )
    record(
        "COPY + INSERT ON CONFLICT, all duplicates",
        raw["copy_duplicates_on_conflict"],
        0,
        args.codes,
    )

    # 5b. more (service, COPY) pairs, taking turns, each on a new file
    pairs: list[dict[str, float]] = [
        {
            "service_codes_per_s": report["runs"]["card_codes_import (new codes)"][
                "rows_per_s"
            ],
            "copy_rows_per_s": args.codes / raw["copy_like_cardcode"],
        }
    ]
    for i in range(args.pairs):
        pair_file = benchlib.RESULTS / f"import-codes-pair-{args.codes}.txt"
        pair_content = write_codes(pair_file, args.codes)
        pair_file.unlink()
        rates: dict[str, float] = {}
        # Taking turns: every other pair runs the COPY first.
        for step in ("copy", "service") if i % 2 == 0 else ("service", "copy"):
            if step == "copy":
                rates["copy_rows_per_s"] = args.codes / copy_like_once(
                    benchlib.pg_dsn(args.db_name),
                    args.codes,
                    sku_id=skus[2].id,
                    batch_id=copy_batch.id,
                )
                continue
            t0 = time.perf_counter()
            done = card_codes_import(
                sku=skus[5 + i],
                content=pair_content,
                file_name="pair.txt",
                actor=None,
                workers=args.workers,
            )
            rates["service_codes_per_s"] = args.codes / (time.perf_counter() - t0)
            if done.imported != args.codes:
                raise SystemExit(f"unexpected import counts in pair {i}: {done}")
        pairs.append(rates)
    report["pairs"] = pairs

    meter.__exit__(None, None, None)
    report["machine_busy"] = {"before": busy_before, "during": meter.busy}

    # 6. where the service's time goes
    lines = content.decode().splitlines()
    t0 = time.perf_counter()
    for _item in codefile.scan(content, file_name=path.name):
        pass
    parse_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    vault.fingerprints(lines)
    fingerprint_s = time.perf_counter() - t0
    # what the service does for each new code once it has the fingerprint
    t0 = time.perf_counter()
    vault.encrypt_many(lines)
    for code in lines:
        vault.mask(code)
    seal_s = time.perf_counter() - t0
    service_s = report["runs"]["card_codes_import (new codes)"]["seconds"]
    dup_s = report["runs"]["card_codes_import (same file again)"]["seconds"]
    report["pipeline"] = {
        **probe.figures,
        "cpu_postgres_copy_like_s": raw["pg_cpu_copy_like_cardcode"],
        "cpu_postgres_copy_cardcode_s": raw["pg_cpu_copy_cardcode"],
    }
    report["breakdown"] = {
        "parse": parse_s,
        "fingerprint": fingerprint_s,
        "seal_known_fingerprint": seal_s,
        "db_execute": db_time,
        "db_execute_select": db_select,
    }

    benchlib.print_table(
        f"Importing {args.codes:,} codes on PostgreSQL ({machine['postgres']})",
        ["run", "codes", "imported", "duplicates", "seconds", "codes/s"],
        rows,
    )
    print(
        f"machine CPU busy before the runs {busy_before:.0%}, during them {meter.busy:.0%} "
        "(one import keeps about one of the two cores busy: Python, then PostgreSQL)"
    )
    copy_like = report["runs"]["COPY into LIKE fulfillment_cardcode INCLUDING ALL"][
        "seconds"
    ]
    copy_bare = report["runs"]["COPY into a bare table"]["seconds"]
    dup_raw = report["runs"]["COPY + INSERT ON CONFLICT, all duplicates"]["seconds"]
    ratios = {
        "service / COPY into LIKE-cardcode table": copy_like / service_s,
        "service / COPY into bare table": copy_bare / service_s,
        "service / COPY into fulfillment_cardcode (FKs)": report["runs"][
            "COPY into fulfillment_cardcode itself"
        ]["seconds"]
        / service_s,
        "service re-import / raw ON CONFLICT re-import": dup_raw / dup_s,
    }
    report["ratios"] = ratios
    # The figures `make bench` reads (benchmarks/bench_report.py), named plainly.
    report["codes_per_s"] = report["runs"]["card_codes_import (new codes)"][
        "rows_per_s"
    ]
    report["copy_rows_per_s"] = report["runs"][
        "COPY into LIKE fulfillment_cardcode INCLUDING ALL"
    ]["rows_per_s"]
    if len(pairs) > 1:  # the medians over every pair, the first run's included
        report["codes_per_s"] = statistics.median(
            p["service_codes_per_s"] for p in pairs
        )
        report["copy_rows_per_s"] = statistics.median(
            p["copy_rows_per_s"] for p in pairs
        )
        benchlib.print_table(
            "Import and COPY in pairs, taking turns (new codes each time)",
            ["pair", "service codes/s", "COPY LIKE rows/s", "ratio"],
            [
                [
                    n,
                    p["service_codes_per_s"],
                    p["copy_rows_per_s"],
                    f"{p['service_codes_per_s'] / p['copy_rows_per_s']:.0%}",
                ]
                for n, p in enumerate(pairs)
            ]
            + [
                [
                    "median",
                    report["codes_per_s"],
                    report["copy_rows_per_s"],
                    f"{report['codes_per_s'] / report['copy_rows_per_s']:.0%}",
                ]
            ],
        )
    report["peak_rss_mib"] = report["peak_rss"]["peak_rss_mib"]
    if "peak_rss_million" in report:
        report["peak_rss_million_mib"] = report["peak_rss_million"]["peak_rss_mib"]
    print_tail(report)
    print(f"\ncodes in the vault: {CardCode.objects.count():,}")
    if args.json:
        print(f"wrote {benchlib.write_json('import_codes', report)}")
    path.unlink()


if __name__ == "__main__":
    main()
