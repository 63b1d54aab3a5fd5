"""Fulfillment: the card-code vault (batches, codes, access audit).

A CardCode row never holds plaintext: only Fernet ciphertext, the id of the key
that made it, a keyed HMAC fingerprint (duplicate detection without
decrypting) and a masked hint such as `AB****9Z`. fulfillment/vault.py is the
only module that turns one into the other.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class CodeBatch(models.Model):
    sku = models.ForeignKey(
        "catalog.Sku",
        on_delete=models.PROTECT,
        related_name="batches",
        verbose_name=_("SKU"),
    )
    source = models.CharField(_("来源"), max_length=100, blank=True)
    cost_price = models.DecimalField(
        _("进价（每张）"), max_digits=10, decimal_places=2, null=True, blank=True
    )
    currency = models.CharField(_("币种"), max_length=3, default="CNY", editable=False)
    expires_at = models.DateTimeField(_("过期时间"), null=True, blank=True)
    note = models.CharField(_("备注"), max_length=200, blank=True)
    file_name = models.CharField(_("文件名"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("操作员"),
    )
    created_at = models.DateTimeField(_("导入时间"), auto_now_add=True)
    imported_count = models.PositiveIntegerField(_("导入"), default=0)
    duplicate_count = models.PositiveIntegerField(_("重复"), default=0)
    rejected_count = models.PositiveIntegerField(_("拒绝"), default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("卡密批次")
        verbose_name_plural = _("卡密批次")
        constraints = [
            # The target of the codes' (batch, sku) foreign key (CardCode).
            models.UniqueConstraint(
                fields=["id", "sku"], name="codebatch_id_sku_unique"
            )
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.note or self.source}".strip()


class CardCode(models.Model):
    class Status(models.TextChoices):
        AVAILABLE = "available", _("可售")
        RESERVED = "reserved", _("已预留")
        SOLD = "sold", _("已售")
        VOID = "void", _("作废")
        EXPIRED = "expired", _("已过期")

    # No index of their own on sku and batch: (sku, fingerprint) and (batch, status)
    # lead with them already, and every index costs each imported code (COPY) and
    # each claim. No foreign key of their own either: one composite key,
    # (batch_id, sku_id) -> the batch's (id, sku_id) (fulfillment 0008), says that
    # the batch exists, that the SKU exists, and that a code's SKU is its batch's,
    # with one check per imported row instead of two (docs/DECISIONS.md).
    sku = models.ForeignKey(
        "catalog.Sku",
        on_delete=models.PROTECT,
        related_name="codes",
        verbose_name=_("SKU"),
        db_index=False,
        db_constraint=False,
    )
    batch = models.ForeignKey(
        CodeBatch,
        on_delete=models.PROTECT,
        related_name="codes",
        verbose_name=_("批次"),
        db_index=False,
        db_constraint=False,
    )
    ciphertext = models.TextField(verbose_name=_("密文"))
    key_id = models.CharField(max_length=16, verbose_name=_("密钥 ID"))
    fingerprint = models.CharField(max_length=64, verbose_name=_("指纹"))
    hint = models.CharField(_("掩码"), max_length=24)
    status = models.CharField(
        _("状态"), max_length=10, choices=Status, default=Status.AVAILABLE
    )
    # Copied from the batch so the claim index can order first-expiring-first-out.
    expires_at = models.DateTimeField(_("过期时间"), null=True, blank=True)
    order_line = models.ForeignKey(
        "orders.OrderLine",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="codes",
        verbose_name=_("订单明细"),
    )
    reserved_at = models.DateTimeField(_("预留时间"), null=True, blank=True)
    sold_at = models.DateTimeField(_("售出时间"), null=True, blank=True)
    created_at = models.DateTimeField(_("入库时间"), auto_now_add=True)

    class Meta:
        verbose_name = _("卡密")
        verbose_name_plural = _("卡密")
        permissions = [
            ("reveal_cardcode", _("Can reveal a card code (audited)")),
            ("export_cardcode", _("Can export card codes in plaintext (audited)")),
        ]
        constraints = [
            # A duplicate is refused by the database without decrypting anything.
            models.UniqueConstraint(
                fields=["sku", "fingerprint"], name="cardcode_unique_per_sku"
            ),
            # Reserved and sold codes always name their order line; free ones never do.
            models.CheckConstraint(
                condition=(
                    Q(status__in=["reserved", "sold"], order_line__isnull=False)
                    | (~Q(status__in=["reserved", "sold"]) & Q(order_line__isnull=True))
                ),
                name="cardcode_line_matches_status",
            ),
            models.CheckConstraint(
                condition=~Q(status="sold") | Q(sold_at__isnull=False),
                name="cardcode_sold_has_time",
            ),
        ]
        indexes = [
            # The claim index: only available codes, in FEFO order. Sold rows leave it,
            # so the head of the index stays short (docs/performance-notes.md, lesson 2).
            models.Index(
                fields=["sku", "expires_at", "id"],
                name="cardcode_claim_idx",
                condition=Q(status="available"),
            ),
            models.Index(fields=["batch", "status"], name="cardcode_batch_status_idx"),
            models.Index(fields=["key_id", "id"], name="cardcode_key_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.hint} ({self.get_status_display()})"


class CodeAccessLog(models.Model):
    """Every time a plaintext code left the vault: who, when, which code, why."""

    class Action(models.TextChoices):
        REVEALED_BY_BUYER = "revealed_by_buyer", _("买家查看")
        # A guest order's buyer (no account: actor is empty; orders/guest.py).
        REVEALED_BY_GUEST = "revealed_by_guest", _("游客买家查看")
        REVEALED_BY_STAFF = "revealed_by_staff", _("员工查看")
        EXPORTED = "exported", _("导出")

    code = models.ForeignKey(
        CardCode,
        on_delete=models.PROTECT,
        related_name="access_logs",
        verbose_name=_("卡密"),
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("操作人"),
        null=True,  # a guest buyer (action revealed_by_guest)
        blank=True,
    )
    action = models.CharField(max_length=20, choices=Action, verbose_name=_("动作"))
    ip_address = models.GenericIPAddressField(
        null=True, blank=True, verbose_name=_("IP 地址")
    )
    created_at = models.DateTimeField(
        auto_now_add=True, db_index=True, verbose_name=_("创建时间")
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("卡密访问记录")
        verbose_name_plural = _("卡密访问记录")

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.code_id} by {self.actor_id}"
