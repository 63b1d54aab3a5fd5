"""A shopper's application to become a reseller, from the /reseller/apply/ form.

The form asks for a display name and a contact as well as a note. They are kept
in the reseller's `substore_name` and `substore_contact`: the name and the
customer-service contact the sub-store shows (SPEC §4.3) are exactly what an
applicant gives here, and the operator sees them when deciding.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from distribution.models import Reseller
from distribution.services.resellers import reseller_apply

RS = Reseller.Status
DISPLAY_NAME_MAX = 60  # Reseller.substore_name
CONTACT_MAX = 100  # Reseller.substore_contact
NOTE_MAX = 500  # Reseller.application_note


def reseller_application_submit(
    *,
    user: User,
    display_name: str,
    contact: str,
    note: str = "",
    now: dt.datetime | None = None,
) -> Reseller:
    """A shopper applies (or applies again after a rejection) with name, contact and note.

    1. `reseller_apply` creates the application or reopens a rejected one.
    2. A new or reopened application takes this name and contact; an
       application already open keeps what was first submitted.
    Raises: ResellerError when already approved or suspended (nothing written).
    Locks: Reseller (through reseller_apply).
    Idempotent: a repeated submission returns the open application unchanged.
    """
    now = now or timezone.now()
    with transaction.atomic():
        before = (
            Reseller.objects.filter(user=user).values_list("status", flat=True).first()
        )
        reseller = reseller_apply(user=user, note=note, now=now)
        if before in (None, RS.REJECTED):
            reseller.substore_name = display_name.strip()[:DISPLAY_NAME_MAX]
            reseller.substore_contact = contact.strip()[:CONTACT_MAX]
            reseller.save(
                update_fields=["substore_name", "substore_contact", "updated_at"]
            )
    return reseller
