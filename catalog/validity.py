"""Validity rules as plain values: how long a right lasts and when it must be redeemed.

Pure Python, no ORM: the model hands its fields in, the storefront gets text back.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils.translation import gettext as _
from django.utils.translation import ngettext


@dataclass(frozen=True)
class Validity:
    duration_days: int | None  # how long the right lasts once activated
    redeem_by: dt.date | None  # a fixed last day to redeem
    redeem_within_days: int | None  # or N days after the sale


def redeem_deadline(validity: Validity, *, sold_on: dt.date) -> dt.date | None:
    """The last day a code sold on `sold_on` can be redeemed (the earlier rule wins)."""
    candidates = []
    if validity.redeem_by is not None:
        candidates.append(validity.redeem_by)
    if validity.redeem_within_days is not None:
        candidates.append(sold_on + dt.timedelta(days=validity.redeem_within_days))
    return min(candidates) if candidates else None


def describe(validity: Validity) -> str:
    """One sentence a shopper reads before buying."""
    parts = []
    if validity.duration_days:
        parts.append(
            ngettext(
                "激活后有效 %(days)d 天",
                "激活后有效 %(days)d 天",
                validity.duration_days,
            )
            % {"days": validity.duration_days}
        )
    if validity.redeem_by is not None:
        parts.append(
            _("请于 %(date)s 前兑换") % {"date": validity.redeem_by.isoformat()}
        )
    if validity.redeem_within_days:
        parts.append(
            ngettext(
                "购买后 %(days)d 天内兑换",
                "购买后 %(days)d 天内兑换",
                validity.redeem_within_days,
            )
            % {"days": validity.redeem_within_days}
        )
    return _("；").join(parts) if parts else _("长期有效")
