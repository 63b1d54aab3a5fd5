"""Signal receivers of the fulfillment app (connected in FulfillmentConfig.ready)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save

from fulfillment.models import CodeBatch
from fulfillment.soldout import sold_out_forget


def _batch_saved(
    sender: type, instance: CodeBatch, created: bool, **kwargs: Any
) -> None:
    # Codes arrive with a new batch (import, supplier restock): once they are
    # committed, checkout must look in the vault again.
    if created and not kwargs.get("raw"):
        sold_out_forget([instance.sku_id])


post_save.connect(_batch_saved, sender=CodeBatch, dispatch_uid="soldout-batch-created")
