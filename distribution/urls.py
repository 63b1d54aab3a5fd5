"""The reseller's own pages, under /reseller/ (config/urls.py)."""

from __future__ import annotations

from django.urls import path

from distribution import views

app_name = "distribution"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("apply/", views.reseller_apply, name="reseller-apply"),
    path("entries/", views.entry_list, name="entry-list"),
    path("entries/<int:entry_id>/", views.entry_detail, name="entry-detail"),
    path("ledger.csv", views.ledger_export, name="ledger-export"),
    path("payouts/", views.payout_create, name="payout-create"),
    path("payouts/<int:payout_id>/", views.payout_detail, name="payout-detail"),
    path(
        "payouts/<int:payout_id>/ledger.csv",
        views.payout_export,
        name="payout-export",
    ),
    path("webhooks/", views.webhook_list, name="webhook-list"),
]
