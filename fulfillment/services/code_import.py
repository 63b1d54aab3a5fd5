"""Importing card codes into the vault: streamed, sealed in parallel, inserted with COPY.

One import (card_codes_import), in one transaction from the batch row to the last code:
1. The file is read as a stream (codefile.scan), IMPORT_CHUNK_CODES codes at a time:
   nothing holds every code, fingerprint or token of a million-code file.
2. Each chunk is fingerprinted (keyed HMAC) here and what is already known is dropped
   before anything is encrypted: repeats inside the chunk, codes of the chunks still
   being sealed (their fingerprints are held until they are inserted) and codes the
   vault holds, which includes the chunks this import has inserted (same transaction).
   Once a chunk's look-up finds nothing known, the next chunks skip it (a new file is
   new throughout): the COPY's unique key catches what slips through, below.
3. The new codes are sealed (Fernet + mask) by a pool of worker processes, in parts
   of SEAL_PART_CODES, while this process reads the next chunk and PostgreSQL
   ingests the one before: the COPY runs on a thread of its own (psycopg2 lets go
   of the GIL while PostgreSQL works, and its connections are thread-safe) and
   starts on a chunk's first sealed part. This thread waits for that COPY before
   it sends a statement of its own, so the two never interleave on the connection.
4. Each sealed chunk goes in with one binary COPY straight into the codes table,
   inside a savepoint; the (batch, SKU) key is checked as each COPY ends. If the
   unique key refuses it (a chunk that skipped the look-up held a known code, or a
   concurrent import committed one meanwhile), that chunk is redone through a
   temporary table with INSERT ... ON CONFLICT DO NOTHING, the known codes count
   as duplicates, and look-ups resume. SQLite (the `make run` demo) seals in this
   process and bulk_creates.
A malformed line, a file over `max_codes` or a dead worker rolls the whole import back.

The sealing processes and the COPY: code_copy.py.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from catalog.models import Sku
from config.lib.errors import DomainError
from fulfillment import codefile, vault
from fulfillment.models import CardCode, CodeBatch
from fulfillment.services.code_copy import (
    CopyAffixes,
    InFlight,
    batch_key_checked_per_copy,
    copy_affixes,
    copy_chunk,
    seal_rows,
    sealing_process_init,
)
from fulfillment.soldout import sold_out_forget

logger = logging.getLogger(__name__)

IMPORT_CHUNK = 5000  # rows per bulk_create, and per fingerprint look-up off PostgreSQL
# Codes read, looked up, sealed and COPYed as one unit: big enough that a round trip
# is noise, small enough that a few of them in flight stay a few megabytes.
IMPORT_CHUNK_CODES = 20_000
# Fewer new codes than this in a file that fits one chunk are sealed in this process:
# forking the workers would cost more than it saves.
PARALLEL_MIN_CODES = 5000
# Chunks sealed ahead of the one being COPYed, at most (the workers keep busy).
IN_FLIGHT_CHUNKS = 2
# Codes per sealing task: a chunk's COPY starts once its first part is sealed
# (code_copy.CopyStream), so the part, not the chunk, is what PostgreSQL waits for.
SEAL_PART_CODES = 2000
PREVIEW_CODES = 20

ERR_NOT_CARD_CODE_SKU = _("该 SKU 不是卡密类商品，不能导入卡密")


class CodeImportError(DomainError):
    code = "import_error"


@dataclass
class ImportResult:
    batch: CodeBatch | None
    imported: int
    duplicates: int
    rejected: int
    rejected_lines: list[codefile.Rejected] = field(default_factory=list)
    preview: list[str] = field(default_factory=list)  # masked, e.g. AB****9Z


def card_codes_import(
    *,
    sku: Sku,
    content: bytes,
    file_name: str,
    actor: User | None,
    source: str = "",
    cost_price: Decimal | None = None,
    expires_at: dt.datetime | None = None,
    note: str = "",
    dry_run: bool = False,
    max_codes: int | None = None,
    workers: int | None = None,
) -> ImportResult:
    """Import a code file into a new batch, encrypted, skipping duplicates.

    1. Stream the file in chunks; fingerprint each code and drop in-file repeats and
       codes the vault already holds, without decrypting or encrypting anything.
    2. Seal only the new codes, in `workers` processes (default: one per CPU; 0 seals
       here), and COPY them in, all in one transaction (module docstring).
    3. A dry run (the admin's preview) does step 1 only and writes nothing.
    `max_codes` bounds one import (the admin's, which runs inside a web request).
    Raises: MalformedFileError, CodeImportError (nothing imported).
    Idempotent: importing the same file twice imports nothing the second time.
    """
    if sku.delivery != Sku.Delivery.CARD_CODE:
        raise CodeImportError(ERR_NOT_CARD_CODE_SKU)
    if expires_at is not None and expires_at <= timezone.now():
        raise CodeImportError(_("过期时间必须晚于现在"))
    if cost_price is not None and cost_price < 0:
        raise CodeImportError(_("进价不能为负数"))
    stream = _Stream(
        sku_id=sku.id,
        chunks=_read_chunks(content, file_name=file_name, max_codes=max_codes),
        workers=workers if workers is not None else os.cpu_count() or 1,
    )
    if dry_run:
        stream.run(batch=None)
        return stream.result(batch=None)

    with transaction.atomic():
        batch = CodeBatch.objects.create(
            sku=sku,
            source=source,
            cost_price=cost_price,
            expires_at=expires_at,
            note=note,
            file_name=file_name[:200],
            created_by=actor,
        )
        with batch_key_checked_per_copy():
            stream.run(batch=batch)
        batch.imported_count = stream.imported
        batch.duplicate_count = stream.codes - stream.imported
        batch.rejected_count = len(stream.rejected)
        batch.save(
            update_fields=["imported_count", "duplicate_count", "rejected_count"]
        )
        if stream.imported:
            sold_out_forget([sku.id])  # after commit: the SKU has stock again
    logger.info(
        "code batch %s imported for sku %s: imported=%d duplicates=%d rejected=%d "
        "sealing processes=%d",
        batch.pk,
        sku.code,
        batch.imported_count,
        batch.duplicate_count,
        batch.rejected_count,
        stream.processes,
    )
    return stream.result(batch=batch)


def card_codes_add(
    *,
    sku: Sku,
    codes: Sequence[str],
    source: str,
    cost_price: Decimal | None,
    expires_at: dt.datetime | None,
    note: str,
) -> ImportResult:
    """Seal codes held in memory (a supplier's cards) into a new batch; no file, no disk.

    The codes take the import's own path (parsing rules, de-duplication, sealing)
    as in-memory TXT lines. A code that is not one line of printable text is
    counted as rejected here, rather than split into two lines or failing the
    whole batch as a malformed file would. Runs inside the caller's transaction
    when there is one. Raises: CodeImportError, MalformedFileError.
    """
    lines = [code for code in codes if code and code.isprintable()]
    if not lines:
        raise CodeImportError(_("没有可导入的卡密"))
    result = card_codes_import(
        sku=sku,
        content="\n".join(lines).encode(),
        file_name="",
        actor=None,
        source=source,
        cost_price=cost_price,
        expires_at=expires_at,
        note=note,
    )
    split = len(codes) - len(lines)
    if split and result.batch is not None:
        result.batch.rejected_count += split
        result.batch.save(update_fields=["rejected_count"])
        result.rejected += split
    return result


@dataclass
class _Counter:
    codes: int = 0  # well-formed codes read so far
    rejected: list[codefile.Rejected] = field(default_factory=list)


def _read_chunks(
    content: bytes, *, file_name: str, max_codes: int | None
) -> tuple[_Counter, Iterator[list[str]]]:
    """The file's codes, IMPORT_CHUNK_CODES at a time (only the last chunk is shorter),
    and the counter they fill in as they are read.

    Past `max_codes` the reader only counts, then raises once the total is known.
    """
    counter = _Counter()

    def chunks() -> Iterator[list[str]]:
        chunk: list[str] = []
        for item in codefile.scan(content, file_name=file_name):
            if isinstance(item, codefile.Rejected):
                counter.rejected.append(item)
                continue
            counter.codes += 1
            if max_codes is not None and counter.codes > max_codes:
                continue
            chunk.append(item[1])
            if len(chunk) == IMPORT_CHUNK_CODES:
                yield chunk
                chunk = []
        if max_codes is not None and counter.codes > max_codes:
            raise CodeImportError(
                _(
                    "文件有 %(n)d 个卡密，超过本入口一次 %(max)d 个的上限；请拆分，或用 import_codes 命令导入"
                )
                % {"n": counter.codes, "max": max_codes}
            )
        if not counter.codes and not counter.rejected:
            raise codefile.MalformedFileError(codefile.ERR_NO_CODES)
        if chunk:
            yield chunk

    return counter, chunks()


class _Stream:
    """One pass over the file: de-duplicate each chunk, seal it, insert it."""

    def __init__(
        self,
        *,
        sku_id: int,
        chunks: tuple[_Counter, Iterator[list[str]]],
        workers: int,
    ) -> None:
        self.sku_id = sku_id
        self.counter, self.chunks = chunks
        self.workers = max(0, workers)
        self.processes = 0  # sealing processes started (0: sealed in this process)
        self.new = 0
        self.imported = 0
        self.preview: list[str] = []
        self._pool: ProcessPoolExecutor | None = None
        self._look_up = True  # False while chunks keep turning out all new
        self._copier: ThreadPoolExecutor | None = None
        self._copying: tuple[InFlight, Future[int]] | None = None

    @property
    def codes(self) -> int:
        return self.counter.codes

    @property
    def rejected(self) -> list[codefile.Rejected]:
        return self.counter.rejected

    def result(self, *, batch: CodeBatch | None) -> ImportResult:
        imported = self.new if batch is None else self.imported
        return ImportResult(
            batch=batch,
            imported=imported,
            duplicates=self.codes - imported,
            rejected=len(self.rejected),
            rejected_lines=self.rejected,
            preview=self.preview,
        )

    def run(self, *, batch: CodeBatch | None) -> None:
        """Read, de-duplicate and (unless `batch` is None, a dry run) seal and insert."""
        in_flight: deque[InFlight] = deque()
        # A dry run inserts nothing, so the vault cannot remember its earlier chunks
        # for it: it keeps every new fingerprint (its files are the admin's, capped
        # at codefile.ADMIN_MAX_CODES).
        held: set[str] = set()
        copy = batch is not None and connection.vendor == "postgresql"
        # Only a COPY (PostgreSQL, not a dry run) needs the batch's constant fields.
        affixes = copy_affixes(batch) if copy and batch is not None else None
        try:
            for codes in self.chunks:
                look_up = not copy or self._look_up or len(self.preview) < PREVIEW_CODES
                if look_up:
                    # The connection is ours again: a statement sent while the
                    # copier's COPY fails could land before its ROLLBACK TO.
                    self._copy_wait()
                new = self._new_codes(
                    codes, held=held, in_flight=in_flight, look_up=look_up
                )
                if batch is None:
                    held.update(fp for fp, _code in new)
                elif affixes is None:
                    _bulk_create(batch=batch, new=new)
                else:
                    in_flight.append(
                        InFlight(
                            fingerprints={fp for fp, _code in new},
                            rows=self._seal(
                                new,
                                affixes,
                                whole_file=len(codes) < IMPORT_CHUNK_CODES,
                            ),
                            count=len(new),
                        )
                    )
                    # PostgreSQL is the bottleneck: the oldest chunk goes to the
                    # copier as soon as it is free; we wait only when too many
                    # chunks are sealed ahead (memory).
                    if len(in_flight) > IN_FLIGHT_CHUNKS or self._copy_idle():
                        self._copy_start(batch=batch, chunk=in_flight.popleft())
            if batch is not None:
                while in_flight:
                    self._copy_start(batch=batch, chunk=in_flight.popleft())
                self._copy_wait()
                if not copy:
                    # bulk_create(ignore_conflicts) does not say what it skipped.
                    self.imported = CardCode.objects.filter(batch=batch).count()
        finally:
            if self._copier is not None:
                # Even on an error: the rollback must not meet a COPY in progress.
                self._copier.shutdown(wait=True, cancel_futures=True)
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)

    def _new_codes(
        self,
        codes: list[str],
        *,
        held: set[str],
        in_flight: deque[InFlight],
        look_up: bool,
    ) -> list[tuple[str, str]]:
        """(fingerprint, code) of the chunk's codes seen nowhere before, in file order.

        Without `look_up`, codes the vault holds are left for the COPY to find.
        """
        pending = [chunk.fingerprints for chunk in in_flight]
        if self._copying is not None:
            pending.append(self._copying[0].fingerprints)
        if held:
            pending.append(held)
        fresh: dict[str, str] = {}
        for fp, code in zip(vault.fingerprints(codes), codes, strict=True):
            fresh.setdefault(fp, code)  # first occurrence wins
        for seen in pending:
            for fp in seen.intersection(fresh):
                del fresh[fp]
        if not look_up:
            return list(fresh.items())
        existing = _existing_fingerprints(sku_id=self.sku_id, fingerprints=list(fresh))
        new = [(fp, code) for fp, code in fresh.items() if fp not in existing]
        self.new += len(new)
        room = PREVIEW_CODES - len(self.preview)
        self.preview.extend(vault.mask(code) for _fp, code in new[: max(room, 0)])
        self._look_up = bool(existing)
        return new

    def _copy_start(self, *, batch: CodeBatch, chunk: InFlight) -> None:
        """COPY a sealed chunk on the copier thread, once the one before is in."""
        self._copy_wait()
        if self._copier is None:
            self._copier = ThreadPoolExecutor(1, thread_name_prefix="code-import-copy")
        raw = connection.connection  # psycopg2's own: Django's wrapper is per thread
        self._copying = (chunk, self._copier.submit(copy_chunk, raw, batch.pk, chunk))

    def _copy_idle(self) -> bool:
        return self._copying is None or self._copying[1].done()

    def _copy_wait(self) -> None:
        if self._copying is None:
            return
        chunk, running = self._copying
        self._copying = None
        inserted = running.result()
        self.imported += inserted
        if inserted < chunk.count:
            self._look_up = True  # known codes about: look before sealing again

    def _seal(
        self, new: list[tuple[str, str]], affixes: CopyAffixes, *, whole_file: bool
    ) -> list[Future[bytes]]:
        if not new:
            return []
        if (
            self._pool is None
            and self.workers > 0
            and not (whole_file and len(new) < PARALLEL_MIN_CODES)
        ):
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("fork"),
                initializer=sealing_process_init,
            )
            self.processes = self.workers
        if self._pool is None:
            done: Future[bytes] = Future()
            done.set_result(seal_rows(new, affixes))
            return [done]
        return [
            self._pool.submit(seal_rows, new[start : start + SEAL_PART_CODES], affixes)
            for start in range(0, len(new), SEAL_PART_CODES)
        ]


def _bulk_create(*, batch: CodeBatch, new: list[tuple[str, str]]) -> None:
    """Off PostgreSQL (the SQLite demo): seal here and bulk_create, skipping conflicts."""
    sealed = [vault.seal(code, known_fingerprint=fp) for fp, code in new]
    for start in range(0, len(sealed), IMPORT_CHUNK):
        CardCode.objects.bulk_create(
            [
                CardCode(
                    sku_id=batch.sku_id,
                    batch=batch,
                    ciphertext=item.ciphertext,
                    key_id=item.key_id,
                    fingerprint=item.fingerprint,
                    hint=item.hint,
                    expires_at=batch.expires_at,
                )
                for item in sealed[start : start + IMPORT_CHUNK]
            ],
            ignore_conflicts=True,
        )


def _existing_fingerprints(*, sku_id: int, fingerprints: list[str]) -> set[str]:
    """Which of these fingerprints the SKU's vault holds (this transaction's rows too)."""
    if not fingerprints:
        return set()
    if connection.vendor == "postgresql":
        column = {f.name: f.column for f in CardCode._meta.concrete_fields}
        with connection.cursor() as cursor:
            # One array parameter per chunk rather than 20,000 placeholders.
            cursor.execute(
                f"SELECT {column['fingerprint']} FROM {CardCode._meta.db_table} "  # noqa: S608
                f"WHERE {column['sku']} = %s AND {column['fingerprint']} = ANY(%s)",
                [sku_id, fingerprints],
            )
            return {row[0] for row in cursor.fetchall()}
    found: set[str] = set()
    for start in range(0, len(fingerprints), IMPORT_CHUNK):
        found.update(
            CardCode.objects.filter(
                sku_id=sku_id,
                fingerprint__in=fingerprints[start : start + IMPORT_CHUNK],
            ).values_list("fingerprint", flat=True)
        )
    return found
