"""Supplier cards bought to restock a card SKU's vault (自动补货)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from fulfillment.models.suppliers import Supplier, SupplierProduct
from fulfillment.models.vault import CodeBatch

# --- Supplier cards: automatic restock of card SKUs (自动补货) -----------------


class CardRestock(models.Model):
    """One purchase of supplier cards that refills a card SKU's vault (自动补货).

    Statuses mean what SupplierAttempt's do: new (number fixed, never sent) →
    unknown (sent, or being sent; the answer is not known) → placed (the supplier
    has it) → succeeded (its cards are sealed in `batch`) | failed (the supplier
    failed and refunded it) | rejected (refused: no order exists). The cards'
    plaintext is never stored here: it goes from the supplier's reply straight
    into the vault.
    """

    class Status(models.TextChoices):
        NEW = "new", _("未提交")
        UNKNOWN = "unknown", _("结果未知")
        PLACED = "placed", _("已受理")
        SUCCEEDED = "succeeded", _("成功")
        FAILED = "failed", _("失败")
        REJECTED = "rejected", _("被拒绝")

    OPEN_STATUSES = ("new", "unknown", "placed")

    sku = models.ForeignKey(
        "catalog.Sku",
        on_delete=models.PROTECT,
        related_name="restocks",
        verbose_name=_("SKU"),
    )
    supplier = models.ForeignKey(
        Supplier,
        on_delete=models.PROTECT,
        related_name="restocks",
        verbose_name=_("供应商"),
    )
    supplier_product = models.ForeignKey(
        SupplierProduct,
        on_delete=models.PROTECT,
        related_name="restocks",
        verbose_name=_("供应商商品"),
    )
    # Copied from the mapping: every placement under one number must send the same biz.
    product_id = models.CharField(_("供应商商品编号"), max_length=64)
    customer_order_no = models.CharField(_("请求单号"), max_length=50, unique=True)
    quantity = models.PositiveSmallIntegerField(_("数量"))
    # The mapping's cost when opened; the supplier's own price once it succeeded.
    unit_cost = models.DecimalField(_("进价（每张）"), max_digits=10, decimal_places=2)
    currency = models.CharField(_("币种"), max_length=3, default="CNY", editable=False)
    status = models.CharField(
        _("状态"), max_length=10, choices=Status, default=Status.NEW
    )
    supplier_order_id = models.CharField(_("供应商单号"), max_length=64, blank=True)
    supplier_state = models.CharField(_("供应商状态"), max_length=20, blank=True)
    error_code = models.IntegerField(_("错误代码"), null=True, blank=True)
    last_error = models.CharField(_("最近错误"), max_length=200, blank=True)
    # Set when the engine stops on its own (cards it cannot open or store, or no
    # answer after RESTOCK_MAX_TRIES): only an operator moves it on.
    needs_attention = models.BooleanField(_("需人工处理"), default=False)
    placements = models.PositiveSmallIntegerField(_("提交次数"), default=0)
    queries = models.PositiveSmallIntegerField(_("查询次数"), default=0)
    # Until then a 3003 on query may only mean the order is not visible yet.
    placement_deadline = models.DateTimeField(_("提交期限"), null=True, blank=True)
    lease_until = models.DateTimeField(_("占用至"), null=True, blank=True)
    next_poll_at = models.DateTimeField(_("下次处理"), null=True, blank=True)
    batch = models.ForeignKey(
        CodeBatch,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="restocks",
        verbose_name=_("入库批次"),
    )
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("自动补货")
        verbose_name_plural = _("自动补货")
        constraints = [
            # At most one open restock per SKU: two beat runs racing on the same
            # low stock cannot both buy; the loser's INSERT fails and it moves on.
            models.UniqueConstraint(
                fields=["sku"],
                condition=Q(status__in=["new", "unknown", "placed"]),
                name="cardrestock_one_open_per_sku",
            ),
            models.CheckConstraint(
                condition=Q(unit_cost__gte=0), name="cardrestock_cost_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="cardrestock_quantity_positive"
            ),
        ]
        indexes = [
            # The beat sweep's read: open restocks that are due.
            models.Index(
                fields=["next_poll_at"],
                name="cardrestock_due_idx",
                condition=Q(status__in=["new", "unknown", "placed"]),
            ),
        ]

    def __str__(self) -> str:
        return self.customer_order_no

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES
