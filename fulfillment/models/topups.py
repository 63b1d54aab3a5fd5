"""Top-ups: one order line's supplier work, its attempts, timeline and callbacks."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from fulfillment.models.suppliers import Supplier, SupplierProduct

# --- Top-ups: one order line's supplier work ---------------------------------


class TopUp(models.Model):
    """One top-up line's supplier work, from payment to delivered or refunded.

    pending (recorded in the paying transaction) → working (a worker holds the
    lease and talks to the supplier) ⇄ waiting (the supplier has it, or its answer
    was unknown: `next_poll_at` says when to look again) → succeeded | failed.
    `failed` means every supplier definitively refused: the line is refunded.
    The lease (`lease_until`) is what makes a killed worker harmless: its claim
    runs out and the beat sweep hands the top-up to another worker.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("待提交")
        WORKING = "working", _("处理中")
        WAITING = "waiting", _("等待结果")
        SUCCEEDED = "succeeded", _("充值成功")
        FAILED = "failed", _("充值失败")

    order_line = models.OneToOneField(
        "orders.OrderLine",
        on_delete=models.PROTECT,
        related_name="topup",
        verbose_name=_("订单明细"),
    )
    sku = models.ForeignKey(
        "catalog.Sku", on_delete=models.PROTECT, related_name="+", verbose_name=_("SKU")
    )
    recharge_account = models.CharField(_("充值账号"), max_length=64)
    quantity = models.PositiveSmallIntegerField(_("数量"))
    status = models.CharField(
        _("状态"), max_length=10, choices=Status, default=Status.PENDING
    )
    # Shown to the shopper when it failed (their words), and the supplier's code.
    fail_reason = models.CharField(_("失败原因"), max_length=200, blank=True)
    fail_code = models.CharField(_("失败代码"), max_length=20, blank=True)
    needs_attention = models.BooleanField(_("需人工处理"), default=False)
    attention_note = models.CharField(_("处理说明"), max_length=200, blank=True)
    next_poll_at = models.DateTimeField(_("下次处理"), null=True, blank=True)
    lease_until = models.DateTimeField(_("占用至"), null=True, blank=True)
    deadline_at = models.DateTimeField(_("到账期限"))
    steps = models.PositiveIntegerField(_("处理次数"), default=0)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("直充")
        verbose_name_plural = _("直充")
        indexes = [
            # The beat sweep's read: open top-ups that are due.
            models.Index(
                fields=["next_poll_at"],
                name="topup_due_idx",
                condition=Q(status__in=["pending", "working", "waiting"]),
            ),
        ]

    def __str__(self) -> str:
        return f"TopUp#{self.pk} {self.status}"

    @property
    def is_open(self) -> bool:
        return self.status not in (self.Status.SUCCEEDED, self.Status.FAILED)


class SupplierAttempt(models.Model):
    """One order placed (or maybe placed) with one supplier under one fixed number.

    The number is written before the first call and reused on every retry of
    this attempt; a new attempt (new number) only follows a definitive refusal.
    """

    class Status(models.TextChoices):
        NEW = "new", _("未提交")
        UNKNOWN = "unknown", _("结果未知")
        PLACED = "placed", _("已受理")
        SUCCEEDED = "succeeded", _("成功")
        FAILED = "failed", _("失败")
        REJECTED = "rejected", _("被拒绝")

    topup = models.ForeignKey(
        TopUp, on_delete=models.CASCADE, related_name="attempts", verbose_name=_("直充")
    )
    supplier = models.ForeignKey(
        Supplier,
        on_delete=models.PROTECT,
        related_name="attempts",
        verbose_name=_("供应商"),
    )
    supplier_product = models.ForeignKey(
        SupplierProduct,
        on_delete=models.PROTECT,
        related_name="attempts",
        verbose_name=_("供应商商品"),
    )
    customer_order_no = models.CharField(_("请求单号"), max_length=50, unique=True)
    product_id = models.CharField(_("供应商商品编号"), max_length=64)
    unit_cost = models.DecimalField(_("进价（每件）"), max_digits=10, decimal_places=2)
    status = models.CharField(
        _("状态"), max_length=10, choices=Status, default=Status.NEW
    )
    supplier_order_id = models.CharField(_("供应商单号"), max_length=64, blank=True)
    supplier_state = models.CharField(_("供应商状态"), max_length=20, blank=True)
    error_code = models.IntegerField(_("错误代码"), null=True, blank=True)
    last_error = models.CharField(_("最近错误"), max_length=200, blank=True)
    placements = models.PositiveSmallIntegerField(_("提交次数"), default=0)
    queries = models.PositiveSmallIntegerField(_("查询次数"), default=0)
    # Until then a 3003 on query may only mean the order is not visible yet.
    placement_deadline = models.DateTimeField(_("提交期限"), null=True, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    placed_at = models.DateTimeField(_("受理时间"), null=True, blank=True)
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("供应商请求")
        verbose_name_plural = _("供应商请求")
        constraints = [
            models.CheckConstraint(
                condition=Q(unit_cost__gte=0), name="supplierattempt_cost_not_negative"
            ),
            # At most one attempt of a top-up is open at a time.
            models.UniqueConstraint(
                fields=["topup"],
                condition=Q(status__in=["new", "unknown", "placed"]),
                name="supplierattempt_one_open_per_topup",
            ),
        ]

    def __str__(self) -> str:
        return self.customer_order_no

    @property
    def is_open(self) -> bool:
        return self.status in (self.Status.NEW, self.Status.UNKNOWN, self.Status.PLACED)


class TopUpEvent(models.Model):
    """The top-up's timeline: every request, reply, callback and query, redacted."""

    class Kind(models.TextChoices):
        CREATED = "created", _("创建")
        REQUEST = "request", _("请求")
        CALLBACK = "callback", _("回调")
        STATE = "state", _("状态变化")
        ACTION = "action", _("人工操作")

    topup = models.ForeignKey(
        TopUp, on_delete=models.CASCADE, related_name="events", verbose_name=_("直充")
    )
    attempt = models.ForeignKey(
        SupplierAttempt,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="events",
        verbose_name=_("供应商请求"),
    )
    supplier = models.ForeignKey(
        Supplier,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("供应商"),
    )
    kind = models.CharField(_("类型"), max_length=10, choices=Kind)
    method = models.CharField(_("接口"), max_length=30, blank=True)
    request = models.JSONField(_("请求"), null=True, blank=True)
    response = models.JSONField(_("响应"), null=True, blank=True)
    http_status = models.PositiveSmallIntegerField(
        _("HTTP 状态"), null=True, blank=True
    )
    latency_ms = models.PositiveIntegerField(_("耗时（毫秒）"), null=True, blank=True)
    ok = models.BooleanField(_("成功"), default=True)
    note = models.CharField(_("说明"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("时间"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("直充记录")
        verbose_name_plural = _("直充记录")
        indexes = [
            # Supplier health: requests per supplier over the last hour and day.
            models.Index(
                fields=["supplier", "created_at"], name="topupevent_health_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.method}"


class SupplierCallback(models.Model):
    """Every callback received, accepted or not, bounded in size."""

    class Outcome(models.TextChoices):
        RECEIVED = "received", _("已接收")
        APPLIED = "applied", _("已处理")
        DUPLICATE = "duplicate", _("重复")
        IGNORED = "ignored", _("与终态矛盾，已忽略")
        BAD_SIGNATURE = "bad_signature", _("签名或格式错误")
        UNKNOWN_SUPPLIER = "unknown_supplier", _("供应商不存在")
        UNKNOWN_ORDER = "unknown_order", _("单号不存在")

    supplier = models.ForeignKey(
        Supplier,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="callbacks",
        verbose_name=_("供应商"),
    )
    supplier_name = models.CharField(_("供应商标识"), max_length=50)
    body = models.TextField(_("原始报文（截断）"))
    body_size = models.PositiveIntegerField(_("报文大小"))
    customer_order_no = models.CharField(
        _("请求单号"), max_length=50, blank=True, db_index=True
    )
    state = models.CharField(_("回调状态"), max_length=20, blank=True)
    outcome = models.CharField(
        _("处理结果"), max_length=20, choices=Outcome, default=Outcome.RECEIVED
    )
    remote_addr = models.GenericIPAddressField(_("来源 IP"), null=True, blank=True)
    created_at = models.DateTimeField(_("时间"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("供应商回调")
        verbose_name_plural = _("供应商回调")

    def __str__(self) -> str:
        return f"{self.supplier_name} {self.customer_order_no} {self.outcome}"
