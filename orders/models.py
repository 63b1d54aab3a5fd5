"""Orders, payments, refunds, the payment-notify log and the email outbox."""

from __future__ import annotations

import secrets
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from catalog.models import Sku

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
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="orders",
        verbose_name=_("用户"),
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
    currency = models.CharField(
        max_length=3, default="CNY", editable=False, verbose_name=_("币种")
    )
    # The checkout form's one-time token: a double click returns the same order.
    client_token = models.CharField(
        max_length=64, blank=True, verbose_name=_("下单令牌")
    )
    ip_address = models.GenericIPAddressField(
        null=True, blank=True, verbose_name=_("IP 地址")
    )
    created_at = models.DateTimeField(_("下单时间"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("更新时间"))
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
    """One thing bought. Lines live their own lives: each has its own state (SPEC §3).

    A bundle is a parent line (what the shopper chose, at the bundle's price) with
    one component line per part; the money sits on the components (each its share
    of the bundle price), so a component can be refunded alone. Lines without
    components are the ones that get delivered: codes or a top-up.
    """

    class Status(models.TextChoices):
        RESERVED = "reserved", _("待发货")
        DELIVERING = "delivering", _("发货中")
        DELIVERED = "delivered", _("已发货")
        REFUNDED = "refunded", _("已退款")
        CANCELLED = "cancelled", _("已取消")

    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="lines", verbose_name=_("订单")
    )
    parent = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="components",
        verbose_name=_("所属组合包"),
    )
    sku = models.ForeignKey(
        "catalog.Sku", on_delete=models.PROTECT, related_name="+", verbose_name=_("SKU")
    )
    # Snapshots: what the shopper bought, even if the catalog changes later.
    delivery = models.CharField(
        _("发货方式"),
        max_length=20,
        choices=Sku.Delivery,
        default=Sku.Delivery.CARD_CODE,
    )
    product_name = models.CharField(max_length=100, verbose_name=_("商品名称"))
    sku_name = models.CharField(max_length=100, verbose_name=_("规格名称"))
    validity_text = models.CharField(
        max_length=200, blank=True, verbose_name=_("有效期说明")
    )
    redeem_instructions = models.TextField(blank=True, verbose_name=_("兑换方式"))
    recharge_account = models.CharField(_("充值账号"), max_length=64, blank=True)
    quantity = models.PositiveSmallIntegerField(verbose_name=_("数量"))
    unit_price = models.DecimalField(
        max_digits=10, decimal_places=2, verbose_name=_("单价")
    )
    # What this line costs the shopper after discounts (coupons, tier prices, a
    # bundle share): not always unit_price × quantity.
    amount = models.DecimalField(
        max_digits=12, decimal_places=2, verbose_name=_("金额")
    )
    discount_amount = models.DecimalField(
        _("优惠金额"), max_digits=12, decimal_places=2, default=0
    )
    refunded_amount = models.DecimalField(
        _("已退金额"), max_digits=12, decimal_places=2, default=0
    )
    status = models.CharField(
        _("状态"), max_length=20, choices=Status, default=Status.RESERVED
    )
    # Why the line ended as it did, in words for the shopper (a refund's reason).
    status_reason = models.CharField(_("状态说明"), max_length=200, blank=True)
    delivered_at = models.DateTimeField(
        null=True, blank=True, verbose_name=_("发货时间")
    )
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("更新时间"))

    class Meta:
        ordering = ["id"]
        verbose_name = _("订单明细")
        verbose_name_plural = _("订单明细")
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="orderline_quantity_positive"
            ),
            models.CheckConstraint(
                condition=Q(amount__gte=0), name="orderline_amount_nonnegative"
            ),
            models.CheckConstraint(
                condition=Q(discount_amount__gte=0),
                name="orderline_discount_nonnegative",
            ),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0)
                & Q(refunded_amount__lte=F("amount")),
                name="orderline_refund_within_amount",
            ),
            # A top-up without an account to credit could never be delivered.
            models.CheckConstraint(
                condition=~Q(delivery="direct_topup") | ~Q(recharge_account=""),
                name="orderline_topup_has_account",
            ),
            models.CheckConstraint(
                condition=~Q(status="delivered") | Q(delivered_at__isnull=False),
                name="orderline_delivered_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku_name} × {self.quantity}"

    @property
    def is_bundle(self) -> bool:
        return self.delivery == Sku.Delivery.BUNDLE

    @property
    def is_topup(self) -> bool:
        return self.delivery == Sku.Delivery.DIRECT_TOPUP

    @property
    def refundable_amount(self) -> Decimal:
        return self.amount - self.refunded_amount


class OrderEvent(models.Model):
    """Append-only history of everything that happened to an order."""

    class Kind(models.TextChoices):
        PLACED = "placed", _("已下单")
        PAID = "paid", _("已支付")
        DELIVERED = "delivered", _("已发货")
        CANCELLED = "cancelled", _("已取消")
        REOPENED = "reopened", _("取消后到账，重新预留")
        REFUNDED = "refunded", _("已退款")
        REVIEW = "review", _("风控审核")
        FULFILLING = "fulfilling", _("发货中")
        PARTIALLY_REFUNDED = "partially_refunded", _("部分退款")
        LINE_DELIVERED = "line_delivered", _("明细已发货")
        LINE_REFUNDED = "line_refunded", _("明细退款")
        REFUND_REQUESTED = "refund_requested", _("发起退款")
        REFUND_FAILED = "refund_failed", _("退款失败")
        CODE_REVEALED = "code_revealed", _("查看卡密")
        EMAIL_QUEUED = "email_queued", _("通知邮件已排队")
        EMAIL_SENT = "email_sent", _("通知邮件已发送")

    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="events", verbose_name=_("订单")
    )
    kind = models.CharField(max_length=20, choices=Kind, verbose_name=_("类型"))
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("操作人"),
    )
    detail = models.JSONField(default=dict, blank=True, verbose_name=_("详情"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("创建时间"))

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

    order = models.ForeignKey(
        Order, on_delete=models.PROTECT, related_name="payments", verbose_name=_("订单")
    )
    gateway = models.CharField(max_length=20, verbose_name=_("支付网关"))
    trade_no = models.CharField(_("网关交易号"), max_length=64)
    amount = models.DecimalField(
        max_digits=12, decimal_places=2, verbose_name=_("金额")
    )
    currency = models.CharField(
        max_length=3, default="CNY", editable=False, verbose_name=_("币种")
    )
    status = models.CharField(
        max_length=10, choices=Status, default=Status.SUCCEEDED, verbose_name=_("状态")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("创建时间"))

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

    gateway = models.CharField(max_length=20, verbose_name=_("支付网关"))
    payload = models.JSONField(verbose_name=_("原始报文"))
    out_trade_no = models.CharField(
        max_length=64, blank=True, db_index=True, verbose_name=_("商户订单号")
    )
    trade_no = models.CharField(max_length=64, blank=True, verbose_name=_("网关交易号"))
    notify_id = models.CharField(max_length=64, blank=True, verbose_name=_("通知 ID"))
    outcome = models.CharField(
        max_length=20,
        choices=Outcome,
        default=Outcome.RECEIVED,
        verbose_name=_("处理结果"),
    )
    message = models.CharField(max_length=200, blank=True, verbose_name=_("说明"))
    order = models.ForeignKey(
        Order,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="notifies",
        verbose_name=_("订单"),
    )
    remote_addr = models.GenericIPAddressField(
        null=True, blank=True, verbose_name=_("来源 IP")
    )
    created_at = models.DateTimeField(
        auto_now_add=True, db_index=True, verbose_name=_("创建时间")
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("支付通知")
        verbose_name_plural = _("支付通知")

    def __str__(self) -> str:
        return f"{self.gateway} {self.out_trade_no} {self.outcome}"


class Refund(models.Model):
    """Money going back for named lines. Claimed before the gateway is called.

    pending → processing (claimed by one worker, conditional UPDATE) → succeeded,
    or failed (the gateway refused: visible in admin, retried by an operator).
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("待处理")
        PROCESSING = "processing", _("处理中")
        SUCCEEDED = "succeeded", _("已退款")
        FAILED = "failed", _("失败")

    class ActorKind(models.TextChoices):
        SYSTEM = "system", _("系统")
        OPERATOR = "operator", _("运营")
        SHOPPER = "shopper", _("买家")

    refund_no = models.CharField(
        max_length=40, unique=True, default=new_token, verbose_name=_("退款单号")
    )
    order = models.ForeignKey(
        Order, on_delete=models.PROTECT, related_name="refunds", verbose_name=_("订单")
    )
    payment = models.ForeignKey(
        Payment,
        on_delete=models.PROTECT,
        related_name="refunds",
        verbose_name=_("支付"),
    )
    amount = models.DecimalField(
        max_digits=12, decimal_places=2, verbose_name=_("金额")
    )
    currency = models.CharField(
        max_length=3, default="CNY", editable=False, verbose_name=_("币种")
    )
    reason = models.CharField(max_length=200, verbose_name=_("原因"))
    actor_kind = models.CharField(
        _("发起方"), max_length=10, choices=ActorKind, default=ActorKind.SYSTEM
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("操作人"),
    )
    status = models.CharField(
        max_length=10, choices=Status, default=Status.PENDING, verbose_name=_("状态")
    )
    attempts = models.PositiveSmallIntegerField(_("尝试次数"), default=0)
    last_error = models.CharField(_("最近错误"), max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("创建时间"))
    claimed_at = models.DateTimeField(_("领取时间"), null=True, blank=True)
    completed_at = models.DateTimeField(
        null=True, blank=True, verbose_name=_("完成时间")
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("退款")
        verbose_name_plural = _("退款")
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="refund_amount_positive"
            ),
        ]
        indexes = [
            models.Index(
                fields=["created_at"],
                name="refund_open_idx",
                condition=Q(status__in=["pending", "processing"]),
            )
        ]

    def __str__(self) -> str:
        return f"{self.refund_no} {self.amount}"


class RefundLine(models.Model):
    """How much of one order line a refund returns."""

    refund = models.ForeignKey(
        Refund, on_delete=models.CASCADE, related_name="lines", verbose_name=_("退款")
    )
    line = models.ForeignKey(
        OrderLine,
        on_delete=models.PROTECT,
        related_name="refund_lines",
        verbose_name=_("订单明细"),
    )
    amount = models.DecimalField(
        max_digits=12, decimal_places=2, verbose_name=_("金额")
    )

    class Meta:
        verbose_name = _("退款明细")
        verbose_name_plural = _("退款明细")
        constraints = [
            models.UniqueConstraint(
                fields=["refund", "line"], name="refundline_once_per_refund"
            ),
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="refundline_amount_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.refund_id}/{self.line_id} {self.amount}"


class SandboxTrade(models.Model):
    """The sandbox gateway's own side of a payment (what a hosted checkout would keep)."""

    class Status(models.TextChoices):
        WAITING = "waiting", _("待支付")
        PAID = "paid", _("已支付")
        CLOSED = "closed", _("已关闭")

    token = models.CharField(
        max_length=64, unique=True, default=new_token, verbose_name=_("支付令牌")
    )
    trade_no = models.CharField(
        max_length=40, unique=True, verbose_name=_("网关交易号")
    )
    out_trade_no = models.CharField(
        max_length=64, db_index=True, verbose_name=_("商户订单号")
    )
    subject = models.CharField(max_length=200, verbose_name=_("商品描述"))
    total_amount = models.DecimalField(
        max_digits=12, decimal_places=2, verbose_name=_("金额")
    )
    notify_url = models.URLField(max_length=300, verbose_name=_("通知地址"))
    return_url = models.URLField(max_length=300, verbose_name=_("返回地址"))
    status = models.CharField(
        max_length=10, choices=Status, default=Status.WAITING, verbose_name=_("状态")
    )
    refunded_amount = models.DecimalField(
        max_digits=12, decimal_places=2, default=0, verbose_name=_("已退金额")
    )
    refund_nos = models.JSONField(
        default=list, blank=True, verbose_name=_("退款单号列表")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("创建时间"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("更新时间"))

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

    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="emails", verbose_name=_("订单")
    )
    kind = models.CharField(max_length=20, choices=Kind, verbose_name=_("类型"))
    # Refund emails are one per refund; the others one per order.
    refund = models.OneToOneField(
        Refund,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="email",
        verbose_name=_("退款"),
    )
    to = models.EmailField(verbose_name=_("收件人"))
    status = models.CharField(
        max_length=10, choices=Status, default=Status.PENDING, verbose_name=_("状态")
    )
    attempts = models.PositiveSmallIntegerField(default=0, verbose_name=_("尝试次数"))
    last_error = models.CharField(
        max_length=200, blank=True, verbose_name=_("最近错误")
    )
    queued_at = models.DateTimeField(null=True, blank=True, verbose_name=_("入队时间"))
    claimed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("领取时间"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("创建时间"))
    sent_at = models.DateTimeField(null=True, blank=True, verbose_name=_("发送时间"))

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("通知邮件")
        verbose_name_plural = _("通知邮件")
        constraints = [
            # One email of each kind per order: retries never send it twice.
            models.UniqueConstraint(
                fields=["order", "kind"],
                condition=Q(refund__isnull=True),
                name="orderemail_once_per_kind",
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
