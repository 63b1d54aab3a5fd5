from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = _("订单与支付")

    def ready(self) -> None:
        from allauth.account.signals import email_confirmed

        email_confirmed.connect(
            _claim_on_email_confirmed, dispatch_uid="orders.guest_claim"
        )


def _claim_on_email_confirmed(
    sender: Any, request: Any = None, email_address: Any = None, **kwargs: Any
) -> None:
    """An account has just verified an email: its guest orders become the
    account's (orders/guest.py). Never fails the confirmation: logged instead."""
    import logging

    from orders.guest import guest_orders_claim

    user = getattr(email_address, "user", None)
    if user is None:
        return
    try:
        guest_orders_claim(user)
    except Exception:
        logging.getLogger(__name__).exception("guest orders not claimed")
