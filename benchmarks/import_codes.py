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
import datetime as dt
import io
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
import psycopg2

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


def write_codes(path: Path, count: int) -> bytes:
    content = "\n".join(secrets.token_hex(8).upper() for _ in range(count)).encode()
    path.write_bytes(content)
    return content


def copy_rows(count: int, *, sku_id: int, batch_id: int) -> str:
    """Tab-separated rows shaped like fulfillment_cardcode's."""
    now = dt.datetime.now(tz=dt.UTC).isoformat()
    buf = io.StringIO()
    for _ in range(count):
        buf.write(
            f"{sku_id}\t{batch_id}\t{secrets.token_urlsafe(75)}\tbench\t{secrets.token_hex(32)}\tAB****YZ\tavailable\t{now}\n"
        )
    return buf.getvalue()


class PipelineProbe:
    """Where a new-code import's wall time goes, seen from outside the service.

    CPU seconds of this process (reading, HMAC, the copier thread), of the sealing
    processes (reaped when the import ends) and of the import's PostgreSQL backend;
    on the copier thread, the COPYs' time and, within it, the time they waited for
    sealed parts (code_copy.CopyStream.read, where the tree has it); the tail after
    the stream (the batch counts and the COMMIT with its deferred foreign-key checks).
    """

    def __init__(self) -> None:
        self.figures: dict[str, float] = {}

    def __enter__(self) -> PipelineProbe:
        from django.db import connection

        from fulfillment.services import code_copy, code_import

        figures = self.figures
        figures.update(copy_s=0.0, copy_wait_s=0.0, copies=0)
        self._patched: list[tuple[Any, str, Any]] = []

        def patch(owner: Any, name: str, wrapper: Any) -> None:
            self._patched.append((owner, name, getattr(owner, name)))
            setattr(owner, name, wrapper)

        copy_chunk, run = code_import.copy_chunk, code_import._Stream.run

        def timed_copy(*args: Any) -> Any:
            t = time.perf_counter()
            try:
                return copy_chunk(*args)
            finally:
                figures["copy_s"] += time.perf_counter() - t
                figures["copies"] += 1

        def timed_run(stream: Any, **kwargs: Any) -> Any:
            try:
                return run(stream, **kwargs)
            finally:
                figures["stream_end_s"] = time.perf_counter() - self._t0

        patch(code_import, "copy_chunk", timed_copy)
        patch(code_import._Stream, "run", timed_run)
        if hasattr(code_copy, "CopyStream"):
            read = code_copy.CopyStream.read

            def timed_read(stream: Any, size: int = -1) -> bytes:
                t = time.perf_counter()
                try:
                    data: bytes = read(stream, size)
                    return data
                finally:
                    now = time.perf_counter()
                    figures["copy_wait_s"] += now - t
                    figures.setdefault("first_data_s", now - self._t0)

            patch(code_copy.CopyStream, "read", timed_read)
        connection.ensure_connection()
        self._backend = connection.connection.info.backend_pid
        self._cpu0 = (
            _cpu(resource.RUSAGE_SELF),
            _cpu(resource.RUSAGE_CHILDREN),
            benchlib.proc_cpu_seconds(self._backend) or 0.0,
        )
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._t0
        main0, sealers0, pg0 = self._cpu0
        for owner, name, original in reversed(self._patched):
            setattr(owner, name, original)
        self.figures.update(
            wall_s=wall,
            cpu_main_s=_cpu(resource.RUSAGE_SELF) - main0,
            cpu_sealers_s=_cpu(resource.RUSAGE_CHILDREN) - sealers0,
            cpu_postgres_s=(benchlib.proc_cpu_seconds(self._backend) or 0.0) - pg0,
            tail_s=wall - self.figures.get("stream_end_s", wall),
        )


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


COPY_COLUMNS = benchlib.CARDCODE_COPY_COLUMNS


def copy_like_once(dsn: str, count: int, *, sku_id: int, batch_id: int) -> float:
    """Seconds to COPY `count` new rows into a new LIKE-cardcode table (then dropped)."""
    data = copy_rows(count, sku_id=sku_id, batch_id=batch_id)
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE bench_copy_pair (LIKE fulfillment_cardcode INCLUDING ALL)"
            )
            conn.commit()
            t0 = time.perf_counter()
            cur.copy_from(io.StringIO(data), "bench_copy_pair", columns=COPY_COLUMNS)
            conn.commit()
            seconds = time.perf_counter() - t0
            cur.execute("DROP TABLE bench_copy_pair")
            conn.commit()
    finally:
        conn.close()
    return seconds


def raw_copy(dsn: str, count: int, *, sku_id: int, batch_id: int) -> dict[str, float]:
    """COPY into a bare table, a LIKE-cardcode table and the real one (its foreign keys
    checked at commit); then a raw duplicate re-import."""
    data = copy_rows(count, sku_id=sku_id, batch_id=batch_id)
    conn = psycopg2.connect(dsn)
    backend = conn.info.backend_pid
    out: dict[str, float] = {}
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE bench_copy_bare (sku_id bigint, batch_id bigint, ciphertext text, key_id varchar(16), "
            "fingerprint varchar(64), hint varchar(24), status varchar(10), created_at timestamptz)"
        )
        cur.execute(
            "CREATE TABLE bench_copy_like (LIKE fulfillment_cardcode INCLUDING ALL)"
        )
        conn.commit()
        for name, table in (
            ("copy_bare", "bench_copy_bare"),
            ("copy_like_cardcode", "bench_copy_like"),
            ("copy_cardcode", "fulfillment_cardcode"),
        ):
            cpu0 = benchlib.proc_cpu_seconds(backend) or 0.0
            t0 = time.perf_counter()
            cur.copy_from(io.StringIO(data), table, columns=COPY_COLUMNS)
            conn.commit()
            out[name] = time.perf_counter() - t0
            out[f"pg_cpu_{name}"] = (benchlib.proc_cpu_seconds(backend) or 0.0) - cpu0
        # the raw equivalent of re-importing the same file: every row a duplicate
        t0 = time.perf_counter()
        cur.execute("CREATE TEMP TABLE incoming (LIKE bench_copy_bare)")
        cur.copy_from(io.StringIO(data), "incoming", columns=COPY_COLUMNS)
        cur.execute(
            "INSERT INTO bench_copy_like (sku_id, batch_id, ciphertext, key_id, fingerprint, hint, status, created_at) "
            "SELECT sku_id, batch_id, ciphertext, key_id, fingerprint, hint, status, created_at FROM incoming "
            "ON CONFLICT (sku_id, fingerprint) DO NOTHING"
        )
        inserted = cur.rowcount
        conn.commit()
        out["copy_duplicates_on_conflict"] = time.perf_counter() - t0
        if inserted != 0:
            raise SystemExit(f"raw duplicate re-import inserted {inserted} rows")
        cur.execute("DROP TABLE bench_copy_bare, bench_copy_like")
        conn.commit()
    conn.close()
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
    print(f"\ncodes in the vault: {CardCode.objects.count():,}")
    if args.json:
        print(f"wrote {benchlib.write_json('import_codes', report)}")
    path.unlink()


if __name__ == "__main__":
    main()
