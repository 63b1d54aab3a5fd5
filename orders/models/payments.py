"""Payments, every gateway notify, refunds and the sandbox gateway's own trades."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from orders.models.orders import Order, OrderLine, new_token


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
        # Refund result notifies (/payments/notify/<gateway>/refund/).
        REFUND_SUCCEEDED = "refund_succeeded", _("退款成功")
        REFUND_FAILED = "refund_failed", _("退款失败")
        UNKNOWN_REFUND = "unknown_refund", _("退款单不存在")

    gateway = models.CharField(max_length=20, verbose_name=_("支付网关"))
    payload = models.JSONField(verbose_name=_("原始报文"))
    out_trade_no = models.CharField(
        max_length=64, blank=True, verbose_name=_("商户订单号")
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
    # The payload is stored bounded (orders/services/notify_intake.py); the raw
    # body's digest still identifies exactly what was sent.
    body_sha256 = models.CharField(
        _("报文 SHA-256"), max_length=64, blank=True, editable=False
    )
    created_at = models.DateTimeField(
        auto_now_add=True, db_index=True, verbose_name=_("创建时间")
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("支付通知")
        verbose_name_plural = _("支付通知")
        # A plain index (db_index=True on a CharField adds a LIKE twin).
        indexes = [
            models.Index(fields=["out_trade_no"], name="paymentnotify_out_trade_idx")
        ]

    def __str__(self) -> str:
        return f"{self.gateway} {self.out_trade_no} {self.outcome}"


class Refund(models.Model):
    """Money going back for named lines. Claimed before the gateway is called.

    pending → processing (claimed by one worker, conditional UPDATE) → succeeded,
    or failed (the gateway refused: visible in admin, retried by an operator);
    or processing → submitted, when the gateway accepted the refund and settles
    it later (WeChat Pay), until its result notify or a query ends it succeeded
    or failed (orders/services/refund_results.py).
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("待处理")
        PROCESSING = "processing", _("处理中")
        SUBMITTED = "submitted", _("等待渠道退款")
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
    # An operator's form carries a one-time key: a second click finds this refund.
    request_key = models.CharField(_("请求键"), max_length=64, blank=True)
    # The language of the shopper's email about it ("" for the site's default).
    language = models.CharField(_("语言"), max_length=10, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("创建时间"))
    claimed_at = models.DateTimeField(_("领取时间"), null=True, blank=True)
    # When the sweep last asked the gateway about a submitted refund.
    checked_at = models.DateTimeField(_("渠道查询时间"), null=True, blank=True)
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
            models.UniqueConstraint(
                fields=["order", "request_key"],
                condition=~Q(request_key=""),
                name="refund_request_key_unique",
            ),
        ]
        indexes = [
            models.Index(
                fields=["created_at"],
                name="refund_open_idx",
                condition=Q(status__in=["pending", "processing"]),
            ),
            # The sweep's: refunds the gateway accepted and has not settled.
            models.Index(
                fields=["checked_at"],
                name="refund_submitted_idx",
                condition=Q(status="submitted"),
            ),
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

    # Unique by constraints and indexed by Meta.indexes: unique=True and
    # db_index=True on a CharField add LIKE twins nobody uses (Order.number).
    token = models.CharField(
        max_length=64, default=new_token, verbose_name=_("支付令牌")
    )
    trade_no = models.CharField(max_length=40, verbose_name=_("网关交易号"))
    out_trade_no = models.CharField(max_length=64, verbose_name=_("商户订单号"))
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
    # The notify this trade owes the shop (its trade_status; "" when none, as
    # for a trade the shop closed itself), and when the shop acknowledged it:
    # until then the sweep re-sends it (orders/services/notify_sweep.py).
    notify_status = models.CharField(_("待发通知"), max_length=20, blank=True)
    notified_at = models.DateTimeField(_("通知确认时间"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("创建时间"))
    # Also the time of the last notify attempt, which the sweep waits on.
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("更新时间"))

    class Meta:
        verbose_name = _("沙箱交易")
        verbose_name_plural = _("沙箱交易")
        constraints = [
            models.UniqueConstraint(fields=["token"], name="sandboxtrade_token_unique"),
            models.UniqueConstraint(
                fields=["trade_no"], name="sandboxtrade_trade_no_unique"
            ),
            # One payable trade per order: two "pay" clicks at once open one.
            models.UniqueConstraint(
                fields=["out_trade_no"],
                condition=Q(status="waiting"),
                name="sandboxtrade_one_waiting_per_order",
            ),
        ]
        indexes = [
            models.Index(fields=["out_trade_no"], name="sandboxtrade_out_trade_idx"),
            models.Index(
                fields=["updated_at"],
                name="sandboxtrade_notify_due_idx",
                condition=Q(notified_at__isnull=True) & ~Q(notify_status=""),
            ),
        ]

    def __str__(self) -> str:
        return self.trade_no
