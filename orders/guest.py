"""Buying without an account: a guest order's keys, access, lookup and claim.

A guest order (Order.user None) is reached in two ways, and only these:

- its access link, `/orders/<number>/?t=<token>`: shown once on the order page
  after payment and sent in the delivery email. The token is an HMAC of the
  order number under SECRET_KEY (`access_token`), so the delivery email can
  rebuild it; the order keeps only its sha256 (`access_token_hash`), compared in
  constant time. A database copy alone opens no order.
- `/orders/lookup/`: the order number, the email and the lookup password chosen
  at checkout (hashed with Django's password hashers). Rate-limited per client
  address and per order number (`lookup_limited`); a wrong email, a wrong
  password and an unknown order get the same answer, and take the same time
  (a password hash is computed either way).

Either grants access to that one order for the browser's session
(`access_grant`); nothing else about any other order is shown.

A logged-in shopper whose verified email is a guest order's email can claim it
into their account (`guest_orders_claim`): the order is then theirs only, and
its guest keys stop working.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.contrib.sessions.backends.base import SessionBase
from django.core.cache import caches
from django.db import transaction
from django.db.models import Count, Q, QuerySet, Subquery
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils.crypto import salted_hmac

from accounts.models import User
from orders.models import Order, OrderEvent

logger = logging.getLogger(__name__)

SESSION_KEY = "orders_guest_access"
# The token to show once on the order page after payment, by order number.
SESSION_SHOW_KEY = "orders_guest_token_show"
_TOKEN_SALT = "kaquan.orders.guest_access"  # noqa: S105  (an HMAC salt)
# How many guest orders one session remembers (the oldest are forgotten).
SESSION_MAX_ORDERS = 20


@dataclass(frozen=True)
class Owner:
    """Whose checkout: an account (user_id), or a guest (user_id None) by email."""

    user_id: int | None
    email: str

    @property
    def key(self) -> int | str:
        """The sold-out path's cache key part (checkout_known_sold_out)."""
        return self.user_id if self.user_id is not None else guest_key(self.email)

    def filter(self) -> dict[str, Any]:
        if self.user_id is not None:
            return {"user_id": self.user_id}
        return {"user__isnull": True, "email": self.email}


def guest_key(email: str) -> str:
    """A guest's key for the placed-order cache: by email (never an account id)."""
    return "guest:" + email_normalize(email)


def email_normalize(email: str) -> str:
    """A guest order's email as stored and compared: trimmed, lower-cased."""
    return email.strip().lower()


def access_token(number: str) -> str:
    """The access link's token for a guest order (43 URL-safe characters)."""
    digest = salted_hmac(_TOKEN_SALT, number, algorithm="sha256").digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def guest_keys(*, number: str, lookup_password: str) -> dict[str, str]:
    """The stored keys of a new guest order: hashes only (no password: the order
    is reached by its link alone)."""
    return {
        "lookup_password": make_password(lookup_password) if lookup_password else "",
        "access_token_hash": token_hash(access_token(number)),
    }


def token_matches(order: Order, token: str) -> bool:
    """Whether `token` opens this guest order (constant-time comparison)."""
    if not order.is_guest or not order.access_token_hash or not token:
        return False
    return hmac.compare_digest(token_hash(token), order.access_token_hash)


def access_url(order: Order) -> str:
    """The guest order's access link, for emails (SITE_URL-based)."""
    return (
        settings.SITE_URL
        + reverse("orders:order-detail", args=[order.number])
        + "?t="
        + access_token(order.number)
    )


def access_grant(session: SessionBase, number: str) -> None:
    """This browser may open this guest order (and only it) from now on."""
    granted = [n for n in session.get(SESSION_KEY, []) if n != number]
    session[SESSION_KEY] = [*granted, number][-SESSION_MAX_ORDERS:]


def access_has(session: SessionBase, number: str) -> bool:
    return number in session.get(SESSION_KEY, [])


def token_show_later(session: SessionBase, number: str) -> None:
    """Remember to show the access link once, on the order page after payment."""
    pending = session.get(SESSION_SHOW_KEY, [])
    if number not in pending:
        session[SESSION_SHOW_KEY] = [*pending, number][-SESSION_MAX_ORDERS:]


def token_show_take(session: SessionBase, order: Order) -> str | None:
    """The access link to show now, once: after payment, never again."""
    pending = session.get(SESSION_SHOW_KEY, [])
    if order.number not in pending or order.is_pending or not order.is_guest:
        return None
    session[SESSION_SHOW_KEY] = [n for n in pending if n != order.number]
    return access_url(order)


# A hash computed when no order matches: the same work as a real check.
_DUMMY_PASSWORD = "kaquan-order-lookup-dummy"  # noqa: S105


def order_lookup(*, number: str, email: str, password: str) -> Order | None:
    """The guest order with this number, email and lookup password; None otherwise.

    One answer for an unknown order, a wrong email, a wrong password and an
    order that belongs to an account: None. Raises: nothing. Locks: none.
    """
    order = (
        Order.objects.filter(number=number.strip().upper(), user__isnull=True)
        .only("id", "number", "email", "lookup_password", "user_id", "status")
        .first()
        if number.strip()
        else None
    )
    if order is None or not order.lookup_password:
        make_password(_DUMMY_PASSWORD)  # the same time as a real check
        return None
    right = check_password(password, order.lookup_password)
    if not right or order.email != email_normalize(email):
        return None
    return order


def _lookup_keys(ip: str | None, number: str) -> list[tuple[str, int]]:
    return [
        (f"orders:lookup:ip:{ip or '-'}", settings.ORDER_LOOKUP_LIMIT_PER_IP),
        (
            # Hashed: whatever was typed never becomes a raw cache key.
            "orders:lookup:order:"
            + hashlib.sha256(number.strip().upper().encode()).hexdigest()[:32],
            settings.ORDER_LOOKUP_LIMIT_PER_ORDER,
        ),
    ]


def lookup_limited(*, ip: str | None, number: str) -> bool:
    """Count this lookup attempt; True when its address or its order number is
    over the limit for the window (the attempt is then refused unanswered).

    Counted in CACHES["ratelimit"] (per process while Redis is down: degraded,
    never open). Every attempt counts, right or wrong: a right one ends the
    need to try again.
    """
    cache = caches["ratelimit"]
    window = settings.ORDER_LOOKUP_WINDOW_SECONDS
    over = False
    for key, limit in _lookup_keys(ip, number):
        cache.add(key, 0, window)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, window)
            count = 1
        over = over or count > limit
    return over


def guest_orders_claimable(user: User) -> QuerySet[Order]:
    """The guest orders this account may claim: those whose email is one of the
    account's verified addresses (allauth's EmailAddress). One query to count."""
    verified = (
        EmailAddress.objects.filter(user=user, verified=True)
        .annotate(address=Lower("email"))
        .values("address")
    )
    return Order.objects.filter(user__isnull=True, email__in=Subquery(verified))


def order_counts(user: User) -> tuple[int, int]:
    """(the account's orders, guest orders it may claim): one query, for /orders/."""
    verified = (
        EmailAddress.objects.filter(user=user, verified=True)
        .annotate(address=Lower("email"))
        .values("address")
    )
    mine = Q(user_id=user.pk)
    counted = Order.objects.filter(
        mine | Q(user__isnull=True, email__in=Subquery(verified))
    ).aggregate(
        mine=Count("pk", filter=mine), waiting=Count("pk", filter=Q(user__isnull=True))
    )
    return int(counted["mine"]), int(counted["waiting"])


def guest_orders_claim(user: User) -> int:
    """Move the guest orders of the account's verified emails into the account.

    Each claimed order gets a `claimed` event; its guest keys (lookup password,
    access link) stop working, since the order now needs the account.
    Returns how many orders were claimed. Locks: Order (each, by id).
    Idempotent: an order already claimed is not a guest order any more.
    """
    claimed = 0
    with transaction.atomic():
        for order in (
            guest_orders_claimable(user).select_for_update(of=("self",)).order_by("pk")
        ):
            order.user = user
            order.lookup_password = ""
            order.access_token_hash = ""
            order.save(
                update_fields=[
                    "user",
                    "lookup_password",
                    "access_token_hash",
                    "updated_at",
                ]
            )
            OrderEvent.objects.create(
                order=order,
                kind=OrderEvent.Kind.CLAIMED,
                actor=user,
                detail={"email": order.email},
            )
            claimed += 1
    if claimed:
        logger.info("user %s claimed %d guest orders", user.pk, claimed)
    return claimed
