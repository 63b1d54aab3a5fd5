"""Fulfillment: the card-code vault (batches, codes, access audit).

A CardCode row never holds plaintext: only Fernet ciphertext, the id of the key
that made it, a keyed HMAC fingerprint (duplicate detection without
decrypting) and a masked hint such as `AB****9Z`. fulfillment/vault.py is the
only module that turns one into the other.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator, URLValidator
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

    def __str__(self) -> str:
        return f"#{self.pk} {self.note or self.source}".strip()


class CardCode(models.Model):
    class Status(models.TextChoices):
        AVAILABLE = "available", _("可售")
        RESERVED = "reserved", _("已预留")
        SOLD = "sold", _("已售")
        VOID = "void", _("作废")
        EXPIRED = "expired", _("已过期")

    sku = models.ForeignKey(
        "catalog.Sku",
        on_delete=models.PROTECT,
        related_name="codes",
        verbose_name=_("SKU"),
    )
    batch = models.ForeignKey(
        CodeBatch,
        on_delete=models.PROTECT,
        related_name="codes",
        verbose_name=_("批次"),
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


# --- Suppliers (direct top-ups and supplier-restocked cards) -----------------
# Priority everywhere is ascending: the lowest number is tried first (like a
# queue position). A SKU's fail-over order is its mappings' priority, then the
# supplier's priority (fulfillment.selectors.supplier_products_for_sku).
DEFAULT_SUPPLIER_PRIORITY = 100


class Supplier(models.Model):
    """An external supplier we buy top-ups (and cards) from, through one adapter.

    The signing secret is sealed by the vault (secret_ciphertext + secret_key_id),
    never stored or shown in plaintext; only fulfillment.vault opens it.
    """

    class Adapter(models.TextChoices):
        GENERIC = "generic", _("通用充值协议")

    # A slug: it names the supplier in commands and in /suppliers/callback/<name>/.
    name = models.SlugField(_("名称"), max_length=50, unique=True)
    adapter = models.CharField(
        _("接口类型"), max_length=20, choices=Adapter, default=Adapter.GENERIC
    )
    base_url = models.URLField(
        _("接口地址"),
        max_length=200,
        validators=[URLValidator(schemes=["http", "https"])],
    )
    app_key = models.CharField(_("App Key"), max_length=100)
    secret_ciphertext = models.TextField(_("密钥密文"), editable=False)
    secret_key_id = models.CharField(_("密钥 ID"), max_length=16, editable=False)
    priority = models.PositiveSmallIntegerField(
        _("优先级（小者优先）"), default=DEFAULT_SUPPLIER_PRIORITY
    )
    is_enabled = models.BooleanField(_("启用"), default=True)
    currency = models.CharField(_("币种"), max_length=3, default="CNY", editable=False)
    # As the supplier last reported it. Not constrained to >= 0: some suppliers
    # extend credit, and a refresh must record what they say rather than fail.
    last_balance = models.DecimalField(
        _("余额"), max_digits=14, decimal_places=2, null=True, blank=True
    )
    balance_checked_at = models.DateTimeField(_("余额查询时间"), null=True, blank=True)
    last_error = models.CharField(_("最近错误"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        ordering = ["priority", "id"]
        verbose_name = _("供应商")
        verbose_name_plural = _("供应商")
        constraints = [
            # A supplier without a sealed secret could never sign a request.
            models.CheckConstraint(
                condition=~Q(secret_ciphertext="") & ~Q(secret_key_id=""),
                name="supplier_secret_sealed",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class SupplierProduct(models.Model):
    """One SKU as one supplier sells it: their product id, our cost, our preference."""

    class SupplierStatus(models.TextChoices):
        ON = "on", _("上架")
        OFF = "off", _("下架")
        UNKNOWN = "unknown", _("未知")

    class SupplierStock(models.TextChoices):
        OK = "ok", _("充足")
        LOW = "low", _("紧张")
        OUT = "out", _("缺货")
        UNKNOWN = "unknown", _("未知")

    supplier = models.ForeignKey(
        Supplier,
        on_delete=models.PROTECT,
        related_name="products",
        verbose_name=_("供应商"),
    )
    sku = models.ForeignKey(
        "catalog.Sku",
        on_delete=models.PROTECT,
        related_name="supplier_products",
        verbose_name=_("SKU"),
    )
    product_id = models.CharField(_("供应商商品编号"), max_length=64)
    cost = models.DecimalField(
        _("进价（每件）"),
        max_digits=10,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0"))],
    )
    currency = models.CharField(_("币种"), max_length=3, default="CNY", editable=False)
    priority = models.PositiveSmallIntegerField(
        _("优先级（小者优先）"), default=DEFAULT_SUPPLIER_PRIORITY
    )
    is_enabled = models.BooleanField(_("启用"), default=True)
    # What the supplier's product.list said at checked_at (supplier_refresh).
    supplier_status = models.CharField(
        _("供应商状态"),
        max_length=10,
        choices=SupplierStatus,
        default=SupplierStatus.UNKNOWN,
    )
    supplier_stock = models.CharField(
        _("供应商库存"),
        max_length=10,
        choices=SupplierStock,
        default=SupplierStock.UNKNOWN,
    )
    checked_at = models.DateTimeField(_("检查时间"), null=True, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    class Meta:
        ordering = ["sku", "priority", "id"]
        verbose_name = _("供应商商品")
        verbose_name_plural = _("供应商商品")
        constraints = [
            # One mapping per (supplier, SKU): supplier_map updates it in place.
            models.UniqueConstraint(
                fields=["supplier", "sku"], name="supplierproduct_unique_per_sku"
            ),
            models.CheckConstraint(
                condition=Q(cost__gte=0), name="supplierproduct_cost_not_negative"
            ),
        ]
        indexes = [
            # The fail-over and capacity selectors look mappings up by SKU.
            models.Index(fields=["sku", "priority"], name="supplierproduct_sku_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.product_id} @ {self.supplier_id}"


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
