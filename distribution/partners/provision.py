"""`create_partner` (SPEC §4.1): one call makes an account a working API partner."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction

from accounts.models import User
from distribution.models import ApiKey, PartnerAccount, Reseller, Tier
from distribution.partners.balance import balance_adjust_to
from distribution.partners.errors import PartnerApiError
from distribution.partners.keys import api_key_create, partner_account_ensure
from distribution.services import reseller_apply, reseller_approve

ERR_TIER = "no tier named %(name)s"


@dataclass(frozen=True)
class Provisioned:
    reseller: Reseller
    account: PartnerAccount
    key: ApiKey
    secret: str
    user_created: bool


def partner_provision(
    *,
    email: str,
    balance: Decimal,
    tier_name: str | None = None,
    actor: User | None = None,
) -> Provisioned:
    """Create or update a partner: account, approved reseller, API access, balance, a new key.

    1. The user with this email (case-insensitive), created without a usable
       password when there is none.
    2. Its reseller: applied (again, if rejected) and approved, with the tier
       named (else its own, else the default tier).
    3. Its partner account, API access on.
    4. The balance set to `balance` by one adjustment entry (none when equal).
    5. A new API key, whose secret is returned once. Earlier keys keep working
       until an operator revokes them.
    Raises: PartnerApiError for an unknown tier or a malformed balance.
    """
    tier = None
    if tier_name:
        tier = Tier.objects.filter(name=tier_name).first()
        if tier is None:
            raise PartnerApiError(ERR_TIER % {"name": tier_name}, code="unknown_tier")
    email = email.strip()
    users = get_user_model()
    with transaction.atomic():
        user = users.objects.filter(email__iexact=email).first()
        created = user is None
        if user is None:
            user = users.objects.create_user(username=email, email=email)
        reseller = Reseller.objects.filter(user=user).first()
        if reseller is None or reseller.status in (
            Reseller.Status.APPLIED,
            Reseller.Status.REJECTED,
        ):
            reseller = reseller_apply(user=user, note="create_partner")
        reseller = reseller_approve(
            reseller_id=reseller.pk,
            actor=actor,  # type: ignore[arg-type]  # None: the system decided
            tier=tier,
        )
        account = partner_account_ensure(reseller=reseller)
        if not account.is_enabled:
            account.is_enabled = True
            account.save(update_fields=["is_enabled", "updated_at"])
        balance_adjust_to(
            account=account, target=balance, actor=actor, note="create_partner"
        )
        key, secret = api_key_create(
            account=account, actor=actor, label="create_partner"
        )
    return Provisioned(
        reseller=reseller, account=account, key=key, secret=secret, user_created=created
    )
