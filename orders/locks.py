"""Row locks for orders.

Global lock order: User → Order → OrderLine → Sku/stock → CardCode → TopUp → Commission.
Every service takes locks in this order, so two of them can never wait on each
other in a cycle (proven by the threaded tests in tests/orders/).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model

from orders.models import Order, Refund


def user_lock_for_update(*, user_id: int) -> None:
    """Serialise one shopper's checkouts (unpaid-order limit, double-click token)."""
    User = get_user_model()
    list(
        User.objects.filter(pk=user_id)
        .order_by("pk")
        .select_for_update()
        .values_list("pk")
    )


def order_lock_for_update(*, number: str) -> Order | None:
    return (
        Order.objects.select_for_update().filter(number=number).order_by("pk").first()
    )


def order_lock_for_update_by_id(
    *, order_id: int, skip_locked: bool = False
) -> Order | None:
    return (
        Order.objects.select_for_update(skip_locked=skip_locked)
        .filter(pk=order_id)
        .order_by("pk")
        .first()
    )


def refund_lock_for_update(*, refund_id: int) -> Refund | None:
    return (
        Refund.objects.select_for_update().filter(pk=refund_id).order_by("pk").first()
    )
