from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DistributionConfig(AppConfig):
    name = "distribution"
    verbose_name = _("分销")

    def ready(self) -> None:
        # orders must not import distribution: it tells us, we listen.
        from distribution.partners.balance import PartnerBalanceLedger
        from distribution.webhooks import on_order_status_changed
        from orders.gateways.balance import ledger_connect
        from orders.signals import order_status_changed

        ledger_connect(PartnerBalanceLedger())
        order_status_changed.connect(
            on_order_status_changed, dispatch_uid="distribution-partner-webhooks"
        )
        self._connect_commissions_and_attribution()

    @staticmethod
    def _connect_commissions_and_attribution() -> None:
        """Commissions in the order's own transaction (distribution/hooks.py);
        referral binding at signup and login (distribution/attribution.py)."""
        from allauth.account.signals import user_signed_up
        from django.contrib.auth.signals import user_logged_in
        from django.db.models.signals import post_save

        from distribution import attribution, hooks
        from distribution.models import OrderAttribution, PartnerOrder
        from orders.signals import order_lines_delivered, order_lines_refunded

        order_lines_delivered.connect(
            hooks.on_lines_delivered, dispatch_uid="distribution-commission-earn"
        )
        order_lines_refunded.connect(
            hooks.on_lines_refunded, dispatch_uid="distribution-commission-clawback"
        )
        for model in (OrderAttribution, PartnerOrder):
            post_save.connect(
                hooks.on_partner_row_saved,
                sender=model,
                dispatch_uid=f"distribution-partnered-{model.__name__}",
            )
        user_signed_up.connect(
            attribution.on_user_signed_up, dispatch_uid="distribution-customer-bind"
        )
        user_logged_in.connect(
            attribution.on_user_logged_in, dispatch_uid="distribution-bound-session"
        )
