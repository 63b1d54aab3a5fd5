"""What an operator can do to a card restock, through the engine's own rules.

Both actions exist for a restock the engine stopped on (needs_attention): cards
it could not open or store, or no answer after RESTOCK_MAX_TRIES. Neither can
buy twice: "retry now" asks the supplier again under the restock's own number;
"close" is refused while the restock may still deliver cards we paid for.
"""

from __future__ import annotations

import logging
from functools import partial

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from config.lib.errors import DomainError
from fulfillment.models import CardRestock
from fulfillment.services.restock import OPEN, RS, card_restock_dispatch

logger = logging.getLogger(__name__)

ERR_NOT_OPEN = _("该补货单已结束")
ERR_NOT_FLAGGED = _(
    "只有已停下等待人工处理的补货单可以关闭；仍在处理的补货单可能还会到货"
)


class CardRestockActionError(DomainError):
    code = "card_restock_action_error"


def card_restock_retry_now(*, restock_id: int, actor: User) -> bool:
    """Look at an open restock now (query, or place under its own number). False if finished.

    Clears the operator flag; one more failing try flags it again.
    """
    now = timezone.now()
    with transaction.atomic():
        updated = CardRestock.objects.filter(pk=restock_id, status__in=OPEN).update(
            next_poll_at=now, needs_attention=False
        )
        if not updated:
            return False
        transaction.on_commit(partial(card_restock_dispatch, restock_id=restock_id))
    logger.info("card restock %s: retry now by user %s", restock_id, actor.pk)
    return True


def card_restock_close(*, restock_id: int, actor: User) -> CardRestock:
    """Close a restock the engine stopped on, once an operator settled it with the supplier.

    It ends `failed`, so the next check may buy for its SKU again. Refused for a
    restock still moving: it may yet deliver cards we paid for.
    Raises: CardRestockActionError.
    """
    now = timezone.now()
    with transaction.atomic():
        restock = CardRestock.objects.select_for_update().get(pk=restock_id)
        if not restock.is_open:
            raise CardRestockActionError(str(ERR_NOT_OPEN))
        if not restock.needs_attention or (
            restock.lease_until is not None and restock.lease_until > now
        ):
            raise CardRestockActionError(str(ERR_NOT_FLAGGED))
        CardRestock.objects.filter(pk=restock.pk).update(
            status=RS.FAILED,
            needs_attention=False,
            lease_until=None,
            next_poll_at=None,
            finished_at=now,
            last_error=f"closed by operator {actor.pk}; was: {restock.last_error}"[
                :200
            ],
        )
    restock.refresh_from_db()
    logger.warning(
        "card restock %s closed by user %s", restock.customer_order_no, actor.pk
    )
    return restock
