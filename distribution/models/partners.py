"""The partner API's rows: accounts, keys, the prepaid balance ledger, nonces,
idempotent orders and webhook deliveries (SPEC §4.4, docs/DECISIONS.md).

A partner is an approved reseller with a PartnerAccount. Its balance is the sum
of its PartnerBalanceEntry rows, which are only ever inserted; spending locks
the account row first, so two orders can never spend the same money.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from distribution.models.resellers import Reseller

KEY_ID_PREFIX = "pk_"


def new_key_id() -> str:
    # Public (sent in every request's X-Api-Key); random so ids reveal no count.
    return KEY_ID_PREFIX + secrets.token_hex(10)


class PartnerAccount(models.Model):
    """A reseller's access to the partner API: the row every balance spend locks."""

    reseller = models.OneToOneField(
        Reseller,
        on_delete=models.PROTECT,
        related_name="partner_account",
        verbose_name=_("代理"),
    )
    is_enabled = models.BooleanField(_("允许调用 API"), default=True)
    webhook_url = models.URLField(_("回调地址"), max_length=300, blank=True)
    # The webhook signing secret, sealed by the vault (fulfillment/vault.py):
    # HMAC needs the secret itself, so a hash could not sign anything.
    webhook_secret_ciphertext = models.TextField(blank=True, editable=False)
    webhook_secret_key_id = models.CharField(max_length=16, blank=True, editable=False)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("API 合作方")
        verbose_name_plural = _("API 合作方")

    def __str__(self) -> str:
        return f"partner {self.reseller_id}"


class ApiKey(models.Model):
    """One API key: a public id and a secret sealed by the vault, shown once."""

    account = models.ForeignKey(
        PartnerAccount,
        on_delete=models.PROTECT,
        related_name="api_keys",
        verbose_name=_("合作方"),
    )
    key_id = models.CharField(
        _("Key ID"), max_length=32, unique=True, default=new_key_id, editable=False
    )
    # Sealed, never hashed: verifying an HMAC needs the secret (docs/DECISIONS.md).
    secret_ciphertext = models.TextField(editable=False)
    secret_key_id = models.CharField(max_length=16, editable=False)
    label = models.CharField(_("备注"), max_length=60, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("创建人"),
    )
    revoked_at = models.DateTimeField(_("吊销时间"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("最近使用"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("API 密钥")
        verbose_name_plural = _("API 密钥")

    def __str__(self) -> str:
        return self.key_id

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class ApiNonce(models.Model):
    """A nonce seen from a key: the unique key refuses a replay.

    Kept 15 minutes (the ±300 s timestamp window is 10 minutes wide), then
    purged by a periodic task; a request older than that fails its timestamp.
    """

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    nonce = models.CharField(max_length=64)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["api_key", "nonce"], name="apinonce_unique_per_key"
            )
        ]

    def __str__(self) -> str:
        return self.nonce


class PartnerBalanceEntry(models.Model):
    """One movement of a partner's prepaid balance. Only ever inserted.

    top_up (+, an operator), adjustment (±, an operator or create_partner),
    debit (−, an order paid), refund (+, a refund of a balance payment).
    """

    class Kind(models.TextChoices):
        TOP_UP = "top_up", _("充值")
        ADJUSTMENT = "adjustment", _("调整")
        DEBIT = "debit", _("订单扣款")
        REFUND = "refund", _("退款退回")

    account = models.ForeignKey(
        PartnerAccount,
        on_delete=models.PROTECT,
        related_name="balance_entries",
        verbose_name=_("合作方"),
    )
    kind = models.CharField(_("类型"), max_length=12, choices=Kind)
    amount = models.DecimalField(_("金额"), max_digits=14, decimal_places=2)
    currency = models.CharField(_("币种"), max_length=3, default="CNY", editable=False)
    order = models.ForeignKey(
        "orders.Order",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("订单"),
    )
    # A refund's number: the refund credits once however often the gateway is asked.
    refund_no = models.CharField(
        _("退款单号"), max_length=40, null=True, blank=True, unique=True
    )
    note = models.CharField(_("备注"), max_length=200, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("操作人"),
    )
    created_at = models.DateTimeField(_("时间"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("预存款流水")
        verbose_name_plural = _("预存款流水")
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind="top_up") & Q(amount__gt=0))
                | (Q(kind="refund") & Q(amount__gt=0) & Q(refund_no__isnull=False))
                | (Q(kind="debit") & Q(amount__lt=0) & Q(order__isnull=False))
                | (Q(kind="adjustment") & ~Q(amount=0)),
                name="partnerbalance_sign_by_kind",
            ),
            # An order is paid from the balance once.
            models.UniqueConstraint(
                fields=["order"],
                condition=Q(kind="debit"),
                name="partnerbalance_one_debit_per_order",
            ),
        ]
        indexes = [
            models.Index(
                fields=["account", "created_at"], name="partnerbalance_acct_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.kind} {self.amount}"


class PartnerOrder(models.Model):
    """A partner's `out_trade_no` and the order it made; the request's hash for idempotency."""

    account = models.ForeignKey(
        PartnerAccount,
        on_delete=models.PROTECT,
        related_name="orders",
        verbose_name=_("合作方"),
    )
    out_trade_no = models.CharField(_("合作方单号"), max_length=64)
    order = models.OneToOneField(
        "orders.Order",
        on_delete=models.PROTECT,
        related_name="partner_order",
        verbose_name=_("订单"),
    )
    # SHA-256 of the canonical request (sku, quantity, recharge account): the
    # same out_trade_no with another request is refused (409).
    request_hash = models.CharField(max_length=64)
    api_key = models.ForeignKey(
        ApiKey, on_delete=models.PROTECT, related_name="+", verbose_name=_("API 密钥")
    )
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("合作方订单")
        verbose_name_plural = _("合作方订单")
        constraints = [
            models.UniqueConstraint(
                fields=["account", "out_trade_no"], name="partnerorder_unique_no"
            )
        ]

    def __str__(self) -> str:
        return self.out_trade_no


class WebhookDelivery(models.Model):
    """One event to POST to a partner's webhook URL, retried until 2xx or a day passes.

    pending (next_attempt_at due) → sending (claimed by one worker) → delivered,
    or back to pending with the next time, or failed once the day is over.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("待发送")
        SENDING = "sending", _("发送中")
        DELIVERED = "delivered", _("已送达")
        FAILED = "failed", _("已放弃")

    account = models.ForeignKey(
        PartnerAccount,
        on_delete=models.PROTECT,
        related_name="webhook_deliveries",
        verbose_name=_("合作方"),
    )
    order = models.ForeignKey(
        "orders.Order",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("订单"),
    )
    event = models.CharField(_("事件"), max_length=40)
    # The exact bytes sent (and signed) on every attempt, sealed by the vault:
    # the order as GET shows it holds the partner's card codes in plaintext.
    body_ciphertext = models.TextField(editable=False)
    body_key_id = models.CharField(max_length=16, editable=False)
    status = models.CharField(
        _("状态"), max_length=10, choices=Status, default=Status.PENDING
    )
    attempts = models.PositiveIntegerField(_("尝试次数"), default=0)
    next_attempt_at = models.DateTimeField(_("下次发送"), null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    give_up_at = models.DateTimeField(_("截止时间"))
    delivered_at = models.DateTimeField(_("送达时间"), null=True, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("Webhook 投递")
        verbose_name_plural = _("Webhook 投递")
        constraints = [
            models.UniqueConstraint(
                fields=["order", "event"], name="webhookdelivery_once_per_event"
            )
        ]
        indexes = [
            models.Index(
                fields=["status", "next_attempt_at"], name="webhookdelivery_due_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} #{self.order_id}"


class WebhookAttempt(models.Model):
    """One POST of a delivery: what came back, how long it took, what went wrong."""

    delivery = models.ForeignKey(
        WebhookDelivery,
        on_delete=models.CASCADE,
        related_name="attempt_rows",
        verbose_name=_("投递"),
    )
    number = models.PositiveIntegerField(_("第几次"))
    url = models.URLField(_("地址"), max_length=300)
    succeeded = models.BooleanField(_("成功"))
    response_code = models.PositiveSmallIntegerField(_("响应码"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("耗时（毫秒）"))
    error = models.CharField(_("错误"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("时间"), auto_now_add=True)

    class Meta:
        ordering = ["delivery", "number"]
        verbose_name = _("Webhook 尝试")
        verbose_name_plural = _("Webhook 尝试")
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "number"], name="webhookattempt_unique_number"
            )
        ]

    def __str__(self) -> str:
        return f"{self.delivery_id}#{self.number}"
