"""Orders, payments, refunds, the payment-notify log and the email outbox."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

# Crockford-style alphabet: no 0/O, 1/I/L confusion when a shopper reads a number out.
_NUMBER_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def new_order_number() -> str:
    """`KQ` + 18 random characters (~89 bits): unguessable, safe in URLs."""
    return "KQ" + "".join(secrets.choice(_NUMBER_ALPHABET) for _ in range(18))


def new_token() -> str:
    return secrets.token_urlsafe(24)


class Order(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("待支付")
        PAID = "paid", _("已支付")
        REVIEW = "review", _("审核中")
        FULFILLING = "fulfilling", _("发货中")
        DELIVERED = "delivered", _("已发货")
        REFUNDED = "refunded", _("已退款")
        PARTIALLY_REFUNDED = "partially_refunded", _("部分退款")
        CANCELLED = "cancelled", _("已取消")

    number = models.CharField(
        _("订单号"), max_length=20, unique=True, default=new_order_number
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders"
    )
    email = models.EmailField(_("通知邮箱"))
    status = models.CharField(
        _("状态"), max_length=20, choices=Status, default=Status.PENDING
    )
    total_amount = models.DecimalField(_("应付金额"), max_digits=12, decimal_places=2)
    paid_amount = models.DecimalField(
        _("实付金额"), max_digits=12, decimal_places=2, default=0
    )
    refunded_amount = models.DecimalField(
        _("已退金额"), max_digits=12, decimal_places=2, default=0
    )
    currency = models.CharField(max_length=3, default="CNY", editable=False)
    # The checkout form's one-time token: a double click returns the same order.
    client_token = models.CharField(max_length=64, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(_("下单时间"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    expires_at = models.DateTimeField(_("支付截止"))
    paid_at = models.DateTimeField(_("支付时间"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("发货时间"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("取消时间"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("订单")
        verbose_name_plural = _("订单")
        constraints = [
            models.CheckConstraint(
                condition=Q(total_amount__gt=0), name="order_total_positive"
            ),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0)
                & Q(refunded_amount__lte=F("paid_amount")),
                name="order_refund_within_paid",
            ),
            models.UniqueConstraint(
                fields=["user", "client_token"],
                condition=~Q(client_token=""),
                name="order_client_token_unique",
            ),
        ]
        indexes = [
            models.Index(
                fields=["expires_at"],
                name="order_pending_expiry_idx",
                condition=Q(status="pending"),
            ),
            models.Index(fields=["user", "status"], name="order_user_status_idx"),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def is_pending(self) -> bool:
        return self.status == self.Status.PENDING

    @property
    def is_delivered(self) -> bool:
        return self.status == self.Status.DELIVERED


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    sku = models.ForeignKey("catalog.Sku", on_delete=models.PROTECT, related_name="+")
    # Snapshots: what the shopper bought, even if the catalog changes later.
    product_name = models.CharField(max_length=100)
    sku_name = models.CharField(max_length=100)
    validity_text = models.CharField(max_length=200, blank=True)
    redeem_instructions = models.TextField(blank=True)
    quantity = models.PositiveSmallIntegerField()
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("订单明细")
        verbose_name_plural = _("订单明细")
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="orderline_quantity_positive"
            ),
            models.CheckConstraint(
                condition=Q(amount=F("unit_price") * F("quantity")),
                name="orderline_amount_is_price_times_quantity",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku_name} × {self.quantity}"


class OrderEvent(models.Model):
    """Append-only history of everything that happened to an order."""

    class Kind(models.TextChoices):
        PLACED = "placed", _("已下单")
        PAID = "paid", _("已支付")
        DELIVERED = "delivered", _("已发货")
        CANCELLED = "cancelled", _("已取消")
        REOPENED = "reopened", _("取消后到账，重新预留")
        REFUNDED = "refunded", _("已退款")
        CODE_REVEALED = "code_revealed", _("查看卡密")
        EMAIL_QUEUED = "email_queued", _("通知邮件已排队")
        EMAIL_SENT = "email_sent", _("通知邮件已发送")

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("订单事件")
        verbose_name_plural = _("订单事件")

    def __str__(self) -> str:
        return f"{self.order_id} {self.kind}"


class Payment(models.Model):
    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", _("成功")
        REFUNDED = "refunded", _("已退款")

    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="payments")
    gateway = models.CharField(max_length=20)
    trade_no = models.CharField(_("网关交易号"), max_length=64)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="CNY", editable=False)
    status = models.CharField(max_length=10, choices=Status, default=Status.SUCCEEDED)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("支付")
        verbose_name_plural = _("支付")
        constraints = [
            # One gateway trade pays at most once, however often it is notified.
            models.UniqueConstraint(
                fields=["gateway", "trade_no"], name="payment_trade_unique"
            ),
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="payment_amount_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.gateway}:{self.trade_no}"


class PaymentNotify(models.Model):
    """Every notify a gateway sent us, accepted or not, exactly as received."""

    class Outcome(models.TextChoices):
        RECEIVED = "received", _("已接收")
        PAID = "paid", _("支付成功")
        DUPLICATE = "duplicate", _("重复通知")
        CLOSED = "closed", _("交易关闭")
        REFUNDED = "refunded", _("到账后退款")
        BAD_SIGNATURE = "bad_signature", _("签名错误")
        UNKNOWN_ORDER = "unknown_order", _("订单不存在")
        AMOUNT_MISMATCH = "amount_mismatch", _("金额不符")
        INVALID = "invalid", _("参数无效")

    gateway = models.CharField(max_length=20)
    payload = models.JSONField()
    out_trade_no = models.CharField(max_length=64, blank=True, db_index=True)
    trade_no = models.CharField(max_length=64, blank=True)
    notify_id = models.CharField(max_length=64, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome, default=Outcome.RECEIVED)
    message = models.CharField(max_length=200, blank=True)
    order = models.ForeignKey(
        Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="notifies"
    )
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("支付通知")
        verbose_name_plural = _("支付通知")

    def __str__(self) -> str:
        return f"{self.gateway} {self.out_trade_no} {self.outcome}"


class Refund(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("处理中")
        SUCCEEDED = "succeeded", _("已退款")
        FAILED = "failed", _("失败")

    refund_no = models.CharField(max_length=40, unique=True, default=new_token)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="refunds")
    payment = models.ForeignKey(
        Payment, on_delete=models.PROTECT, related_name="refunds"
    )
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="CNY", editable=False)
    reason = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("退款")
        verbose_name_plural = _("退款")
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="refund_amount_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.refund_no} {self.amount}"


class SandboxTrade(models.Model):
    """The sandbox gateway's own side of a payment (what a hosted checkout would keep)."""

    class Status(models.TextChoices):
        WAITING = "waiting", _("待支付")
        PAID = "paid", _("已支付")
        CLOSED = "closed", _("已关闭")

    token = models.CharField(max_length=64, unique=True, default=new_token)
    trade_no = models.CharField(max_length=40, unique=True)
    out_trade_no = models.CharField(max_length=64, db_index=True)
    subject = models.CharField(max_length=200)
    total_amount = models.DecimalField(max_digits=12, decimal_places=2)
    notify_url = models.URLField(max_length=300)
    return_url = models.URLField(max_length=300)
    status = models.CharField(max_length=10, choices=Status, default=Status.WAITING)
    refunded_amount = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    refund_nos = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("沙箱交易")
        verbose_name_plural = _("沙箱交易")

    def __str__(self) -> str:
        return self.trade_no


class OrderEmail(models.Model):
    """Outbox: written in the order's transaction, sent by Celery, retried by beat."""

    class Kind(models.TextChoices):
        DELIVERED = "delivered", _("发货通知")
        REFUNDED = "refunded", _("退款通知")

    class Status(models.TextChoices):
        PENDING = "pending", _("待发送")
        SENDING = "sending", _("发送中")
        SENT = "sent", _("已发送")
        FAILED = "failed", _("失败")

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="emails")
    kind = models.CharField(max_length=20, choices=Kind)
    to = models.EmailField()
    status = models.CharField(max_length=10, choices=Status, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=200, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("通知邮件")
        verbose_name_plural = _("通知邮件")
        constraints = [
            # One email of each kind per order: retries never send it twice.
            models.UniqueConstraint(
                fields=["order", "kind"], name="orderemail_once_per_kind"
            ),
        ]
        indexes = [
            models.Index(
                fields=["created_at"],
                name="orderemail_unsent_idx",
                condition=Q(status__in=["pending", "sending"]),
            )
        ]

    def __str__(self) -> str:
        return f"{self.order_id} {self.kind} {self.status}"
