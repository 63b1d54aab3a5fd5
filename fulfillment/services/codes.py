"""Card-code services: reserving, selling, revealing, rotating (importing: code_import.py)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy

from accounts.models import User
from catalog.models import Sku
from config.lib.db import execute, rows_update
from config.lib.errors import DomainError
from fulfillment import vault
from fulfillment.locks import (
    card_codes_claim_sql,
    card_codes_claimable_lock_for_update,
)
from fulfillment.models import CardCode, CodeAccessLog
from fulfillment.services.code_import import (  # restock.py imports it from here
    card_codes_add as card_codes_add,
)
from fulfillment.services.suppliers import supplier_secrets_rotate
from fulfillment.soldout import sold_out_forget

logger = logging.getLogger(__name__)

ROTATE_CHUNK = 2000

# Lazy: translated when raised, in the shopper's language (not at import).
ERR_OUT_OF_STOCK = gettext_lazy("库存不足：%(sku)s 只剩 %(available)d 件")


class OutOfStockError(DomainError):
    code = "out_of_stock"

    def __init__(self, message: str = "", *, sku_id: int, available: int) -> None:
        super().__init__(message)
        self.sku_id = sku_id
        # Free codes the reservation found (0: the SKU is empty for now).
        self.available = available


def card_codes_reserve(
    *, sku: Sku, order_line_id: int, quantity: int, now: dt.datetime
) -> list[int]:
    """Reserve `quantity` codes for an order line inside the caller's transaction.

    On PostgreSQL the claim and the reservation are one statement
    (`card_codes_reserve_sql`); elsewhere the claim, then a conditional UPDATE.
    Raises: OutOfStockError when fewer free codes exist (the caller rolls back:
        some may have been reserved by then).
    Locks: free CardCode rows, SKIP LOCKED.
    """
    if connection.vendor == "postgresql":
        sql, params = card_codes_reserve_sql(
            sku_id=sku.id, quantity=quantity, now=now, line_sql="%s"
        )
        params[1:1] = [order_line_id]  # the line comes after the status
        with connection.cursor() as cursor:
            execute(cursor, f"{sql} RETURNING id", params)
            ids = [row[0] for row in cursor.fetchall()]
        card_codes_reserve_check(sku=sku, quantity=quantity, reserved=len(ids))
        return ids
    ids = card_codes_claimable_lock_for_update(
        sku_id=sku.id, quantity=quantity, now=now
    )
    card_codes_reserve_check(sku=sku, quantity=quantity, reserved=len(ids))
    # Conditional UPDATE: the status guard is the second line of defence after the lock.
    updated = rows_update(
        CardCode,
        {"id": ids, "status": CardCode.Status.AVAILABLE},
        status=CardCode.Status.RESERVED,
        order_line_id=order_line_id,
        reserved_at=now,
    )
    card_codes_reserve_check(sku=sku, quantity=quantity, reserved=updated)
    return ids


def card_codes_reserve_sql(
    *, sku_id: int, quantity: int, now: dt.datetime, line_sql: str
) -> tuple[str, list[Any]]:
    """The reservation as one UPDATE (PostgreSQL), for a caller to run or to embed
    as a data-modifying CTE of its own statement (the checkout's insert).

    `line_sql` is the SQL of the order line's id (a `%s` whose value the caller
    puts at params[1], or a CTE's `(SELECT id FROM ...)`). The claim is an
    `= ANY(ARRAY(subquery))`: an InitPlan, run exactly once, so its LIMIT holds
    whatever plan the UPDATE gets (a LIMITed `IN (subquery)` may be re-run and
    reserve more codes than asked). The status guard is the second line of
    defence after the lock. Add `RETURNING id` to learn what was reserved, and
    check the count (`card_codes_reserve_check`).
    """
    claim, claim_params = card_codes_claim_sql(
        sku_id=sku_id, quantity=quantity, now=now
    )
    table = connection.ops.quote_name(CardCode._meta.db_table)
    return (
        f'UPDATE {table} SET "status" = %s,'  # noqa: S608 (the model's table)
        f' "order_line_id" = {line_sql}, "reserved_at" = %s'
        f' WHERE "id" = ANY(ARRAY({claim})) AND "status" = %s',
        [
            CardCode.Status.RESERVED.value,
            now,
            *claim_params,
            CardCode.Status.AVAILABLE.value,
        ],
    )


def card_codes_reserve_check(*, sku: Sku, quantity: int, reserved: int) -> None:
    """Raises: OutOfStockError when fewer than `quantity` codes were reserved."""
    if reserved < quantity:
        raise OutOfStockError(
            str(ERR_OUT_OF_STOCK) % {"sku": sku.name, "available": reserved},
            sku_id=sku.id,
            available=reserved,
        )


def card_codes_release(*, order_line_ids: list[int]) -> int:
    """Return the reserved codes of these lines to stock. Idempotent.

    Lowers the sold-out flag of their SKUs once the caller commits.
    """
    held = CardCode.objects.filter(
        order_line_id__in=order_line_ids, status=CardCode.Status.RESERVED
    )
    sku_ids = set(held.values_list("sku_id", flat=True).distinct())
    if not sku_ids:
        return 0
    sold_out_forget(sku_ids)
    return held.update(
        status=CardCode.Status.AVAILABLE, order_line=None, reserved_at=None
    )


def card_codes_mark_sold(
    *, quantities: dict[int, int], now: dt.datetime
) -> dict[int, int]:
    """Turn the reserved codes of these lines (id → quantity bought) into sold ones.

    One UPDATE for all the lines. Returns how many codes each line has sold now.
    Idempotent: codes already sold stay as they are.
    """
    updated = rows_update(
        CardCode,
        {"order_line_id": list(quantities), "status": CardCode.Status.RESERVED},
        status=CardCode.Status.SOLD,
        sold_at=now,
    )
    if len(quantities) == 1 and updated == sum(quantities.values()):
        return dict(quantities)  # the usual case (one line): no second query
    # Several lines (a bundle) share one row count, or a line came up short
    # (a re-run): count each line's sold codes.
    return card_codes_sold_count(order_line_ids=list(quantities))


def card_codes_sold_count(*, order_line_ids: list[int]) -> dict[int, int]:
    """How many sold codes each of these lines has (0 for none)."""
    sold = dict.fromkeys(order_line_ids, 0)
    for line_id in CardCode.objects.filter(
        order_line_id__in=order_line_ids, status=CardCode.Status.SOLD
    ).values_list("order_line_id", flat=True):
        sold[line_id] += 1
    return sold


def card_codes_sell_sql(
    *, lines_sql: str, lines_params: list[Any], now: dt.datetime
) -> tuple[str, list[Any]]:
    """`card_codes_mark_sold` as one UPDATE (PostgreSQL) for a caller to embed as
    a data-modifying CTE of its own statement (the notify's read of the order's
    lines): the reserved codes of the lines `lines_sql` (a SELECT of line ids,
    its values `lines_params`) become sold. Add `RETURNING "order_line_id"` to
    count each line's codes sold now; a line short of its quantity may have had
    codes sold before (a re-run): `card_codes_sold_count` then.
    """
    table = connection.ops.quote_name(CardCode._meta.db_table)
    return (
        f'UPDATE {table} SET "status" = %s, "sold_at" = %s'  # noqa: S608 (the model's table)
        f' WHERE "order_line_id" IN ({lines_sql}) AND "status" = %s',
        [
            CardCode.Status.SOLD.value,
            now,
            *lines_params,
            CardCode.Status.RESERVED.value,
        ],
    )


def card_code_reveal(
    *,
    code: CardCode,
    actor: User | None,
    action: str = CodeAccessLog.Action.REVEALED_BY_BUYER,
    ip_address: str | None = None,
) -> str:
    """Decrypt one code for a permitted viewer and write the audit row first.

    The caller has checked that `actor` may see it (owner or permissioned staff);
    None for a guest order's buyer with access to it (action revealed_by_guest).
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
