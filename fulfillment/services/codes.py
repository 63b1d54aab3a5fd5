"""Card-code services: importing codes into the vault, reserving, selling, revealing."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from catalog.models import Sku
from config.lib.errors import DomainError
from fulfillment import codefile, vault
from fulfillment.locks import card_codes_claimable_lock_for_update
from fulfillment.models import CardCode, CodeAccessLog, CodeBatch
from fulfillment.services.suppliers import supplier_secrets_rotate

logger = logging.getLogger(__name__)

IMPORT_CHUNK = 5000
ROTATE_CHUNK = 2000

ERR_NOT_CARD_CODE_SKU = _("该 SKU 不是卡密类商品，不能导入卡密")
ERR_OUT_OF_STOCK = _("库存不足：%(sku)s 只剩 %(available)d 件")


class OutOfStockError(DomainError):
    code = "out_of_stock"


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
) -> ImportResult:
    """Import a code file into a new batch, encrypted, skipping duplicates.

    1. Parse the whole file first: a malformed file raises before any write.
    2. Fingerprint every code (HMAC) and drop in-file repeats and codes the vault
       already holds, without decrypting anything and before encrypting anything.
    3. Seal only the new codes (Fernet) and insert them in chunks with ON CONFLICT
       DO NOTHING against (sku, fingerprint), which also covers a concurrent import.
    `max_codes` bounds one import (the admin's, which runs inside a web request).
    Raises: MalformedFileError, CodeImportError.
    Idempotent: importing the same file twice imports nothing the second time.
    """
    if sku.delivery != Sku.Delivery.CARD_CODE:
        raise CodeImportError(ERR_NOT_CARD_CODE_SKU)
    if expires_at is not None and expires_at <= timezone.now():
        raise CodeImportError(_("过期时间必须晚于现在"))
    if cost_price is not None and cost_price < 0:
        raise CodeImportError(_("进价不能为负数"))
    parsed = codefile.parse(content, file_name=file_name)
    if max_codes is not None and len(parsed.codes) > max_codes:
        raise CodeImportError(
            _(
                "文件有 %(n)d 个卡密，超过本入口一次 %(max)d 个的上限；请拆分，或用 import_codes 命令导入"
            )
            % {"n": len(parsed.codes), "max": max_codes}
        )

    unique: dict[str, str] = {}  # fingerprint -> code, first occurrence wins
    for _line, code in parsed.codes:
        unique.setdefault(vault.fingerprint(code), code)
    in_file_duplicates = len(parsed.codes) - len(unique)
    existing = _existing_fingerprints(sku_id=sku.id, fingerprints=list(unique))
    new = [(fp, code) for fp, code in unique.items() if fp not in existing]
    preview = [vault.mask(code) for _fp, code in new[:20]]

    if dry_run:
        return ImportResult(
            batch=None,
            imported=len(new),
            duplicates=in_file_duplicates + len(existing),
            rejected=len(parsed.rejected),
            rejected_lines=parsed.rejected,
            preview=preview,
        )

    sealed = [vault.seal(code, known_fingerprint=fp) for fp, code in new]
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
        _card_codes_insert(batch=batch, sealed=sealed)
        imported = CardCode.objects.filter(batch=batch).count()
        batch.imported_count = imported
        batch.duplicate_count = len(parsed.codes) - imported
        batch.rejected_count = len(parsed.rejected)
        batch.save(
            update_fields=["imported_count", "duplicate_count", "rejected_count"]
        )
    logger.info(
        "code batch %s imported for sku %s: imported=%d duplicates=%d rejected=%d",
        batch.pk,
        sku.code,
        batch.imported_count,
        batch.duplicate_count,
        batch.rejected_count,
    )
    return ImportResult(
        batch=batch,
        imported=batch.imported_count,
        duplicates=batch.duplicate_count,
        rejected=batch.rejected_count,
        rejected_lines=parsed.rejected,
        preview=preview,
    )


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


def _card_codes_insert(*, batch: CodeBatch, sealed: list[vault.Sealed]) -> None:
    """Insert sealed codes into a batch, skipping (sku, fingerprint) conflicts.

    On PostgreSQL: COPY into a temporary table, then one INSERT ... SELECT ...
    ON CONFLICT DO NOTHING. Building 100,000 model instances cost half of an
    import (docs/PERFORMANCE.md); COPY skips that. Elsewhere (the SQLite demo):
    bulk_create in chunks.
    """
    if connection.vendor != "postgresql":
        rows = [
            CardCode(
                sku_id=batch.sku_id,
                batch=batch,
                ciphertext=item.ciphertext,
                key_id=item.key_id,
                fingerprint=item.fingerprint,
                hint=item.hint,
                expires_at=batch.expires_at,
            )
            for item in sealed
        ]
        for start in range(0, len(rows), IMPORT_CHUNK):
            CardCode.objects.bulk_create(
                rows[start : start + IMPORT_CHUNK], ignore_conflicts=True
            )
        return
    buffer = io.StringIO()
    csv.writer(buffer).writerows(
        (item.ciphertext, item.key_id, item.fingerprint, item.hint) for item in sealed
    )
    buffer.seek(0)
    column = {f.name: f.column for f in CardCode._meta.concrete_fields}
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE kq_code_import "
            "(ciphertext text, key_id text, fingerprint text, hint text) ON COMMIT DROP"
        )
        cursor.cursor.copy_expert(
            "COPY kq_code_import (ciphertext, key_id, fingerprint, hint) FROM STDIN WITH (FORMAT csv)",
            buffer,
        )
        # Identifiers come from the model's own metadata; values are parameters.
        cursor.execute(
            f"INSERT INTO {CardCode._meta.db_table} "  # noqa: S608
            f"({column['sku']}, {column['batch']}, {column['ciphertext']}, {column['key_id']}, "
            f"{column['fingerprint']}, {column['hint']}, {column['status']}, "
            f"{column['expires_at']}, {column['created_at']}) "
            "SELECT %s, %s, ciphertext, key_id, fingerprint, hint, %s, %s, %s FROM kq_code_import "
            f"ON CONFLICT ({column['sku']}, {column['fingerprint']}) DO NOTHING",
            [
                batch.sku_id,
                batch.id,
                CardCode.Status.AVAILABLE,
                batch.expires_at,
                timezone.now(),
            ],
        )
        # Dropped now, not only on commit: an outer transaction may import again.
        cursor.execute("DROP TABLE kq_code_import")


def _existing_fingerprints(*, sku_id: int, fingerprints: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(fingerprints), IMPORT_CHUNK):
        found.update(
            CardCode.objects.filter(
                sku_id=sku_id,
                fingerprint__in=fingerprints[start : start + IMPORT_CHUNK],
            ).values_list("fingerprint", flat=True)
        )
    return found


def card_codes_reserve(
    *, sku: Sku, order_line_id: int, quantity: int, now: dt.datetime
) -> list[int]:
    """Reserve `quantity` codes for an order line inside the caller's transaction.

    Raises: OutOfStockError when fewer free codes exist (the caller rolls back).
    Locks: free CardCode rows, SKIP LOCKED.
    """
    ids = card_codes_claimable_lock_for_update(
        sku_id=sku.id, quantity=quantity, now=now
    )
    if len(ids) < quantity:
        raise OutOfStockError(
            ERR_OUT_OF_STOCK % {"sku": sku.name, "available": len(ids)}
        )
    # Conditional UPDATE: the status guard is the second line of defence after the lock.
    updated = CardCode.objects.filter(
        id__in=ids, status=CardCode.Status.AVAILABLE
    ).update(
        status=CardCode.Status.RESERVED, order_line_id=order_line_id, reserved_at=now
    )
    if updated != quantity:
        raise OutOfStockError(
            ERR_OUT_OF_STOCK % {"sku": sku.name, "available": updated}
        )
    return ids


def card_codes_release(*, order_line_ids: list[int]) -> int:
    """Return the reserved codes of these lines to stock. Idempotent."""
    return CardCode.objects.filter(
        order_line_id__in=order_line_ids, status=CardCode.Status.RESERVED
    ).update(status=CardCode.Status.AVAILABLE, order_line=None, reserved_at=None)


def card_codes_mark_sold(*, order_line_id: int, quantity: int, now: dt.datetime) -> int:
    """Turn a line's reserved codes into sold ones; returns how many are sold now.

    Idempotent: codes already sold stay as they are.
    """
    updated = CardCode.objects.filter(
        order_line_id=order_line_id, status=CardCode.Status.RESERVED
    ).update(status=CardCode.Status.SOLD, sold_at=now)
    if updated == quantity:
        return updated  # the usual case: no second query
    return CardCode.objects.filter(
        order_line_id=order_line_id, status=CardCode.Status.SOLD
    ).count()


def card_code_reveal(
    *,
    code: CardCode,
    actor: User,
    action: str = CodeAccessLog.Action.REVEALED_BY_BUYER,
    ip_address: str | None = None,
) -> str:
    """Decrypt one code for a permitted viewer and write the audit row first.

    The caller has checked that `actor` may see it (owner or permissioned staff).
    """
    CodeAccessLog.objects.create(
        code=code, actor=actor, action=action, ip_address=ip_address
    )
    return vault.open_sealed(ciphertext=code.ciphertext, key_id=code.key_id)


def card_codes_export(
    *, codes: list[CardCode], actor: User, ip_address: str | None = None
) -> list[tuple[CardCode, str]]:
    """Decrypt codes for a permitted plaintext export, auditing each one.

    All or nothing: every code is decrypted first, then one EXPORTED audit row per
    code is written in a single insert, and only then does plaintext leave.
    Raises: VaultError (nothing logged, nothing returned).
    """
    plaintexts = [
        vault.open_sealed(ciphertext=code.ciphertext, key_id=code.key_id)
        for code in codes
    ]
    CodeAccessLog.objects.bulk_create(
        CodeAccessLog(
            code=code,
            actor=actor,
            action=CodeAccessLog.Action.EXPORTED,
            ip_address=ip_address,
        )
        for code in codes
    )
    return list(zip(codes, plaintexts, strict=True))


def code_expiry_for_date(day: dt.date) -> dt.datetime:
    """A code expiring on a date is sellable through that whole day, local time."""
    return timezone.make_aware(
        dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min)
    )


def card_codes_expire(*, now: dt.datetime | None = None) -> int:
    """Mark free codes past their expiry as expired so they leave the claim index."""
    now = now or timezone.now()
    count = CardCode.objects.filter(
        status=CardCode.Status.AVAILABLE, expires_at__isnull=False, expires_at__lte=now
    ).update(status=CardCode.Status.EXPIRED)
    if count:
        logger.info("marked %d card codes expired", count)
    return count


def vault_rotate(
    *, chunk_size: int = ROTATE_CHUNK, max_chunks: int | None = None
) -> int:
    """Re-encrypt supplier secrets, then codes not under the newest key, chunk by chunk.

    Returns the number of codes re-encrypted (supplier secrets are few and logged).
    Resumable: each chunk commits on its own and the next run picks up the rows
    still under an old key. Locks: each chunk's CardCode rows (status unchanged).
    """
    supplier_secrets_rotate()
    newest = vault.newest_key_id()
    done = 0
    chunks = 0
    while max_chunks is None or chunks < max_chunks:
        with transaction.atomic():
            batch = list(
                CardCode.objects.filter(~Q(key_id=newest))
                .order_by("pk")
                .select_for_update(skip_locked=True)
                .only("id", "ciphertext", "key_id")[:chunk_size]
            )
            if not batch:
                break
            for code in batch:
                code.ciphertext, code.key_id = vault.reseal(
                    ciphertext=code.ciphertext, key_id=code.key_id
                )
            CardCode.objects.bulk_update(batch, ["ciphertext", "key_id"])
        done += len(batch)
        chunks += 1
        logger.info("vault rotation: %d codes re-encrypted so far", done)
    return done
