"""Orders and their lines, and the order's history."""

from __future__ import annotations

import secrets
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Upper
from django.utils.translation import gettext_lazy as _

from catalog.models import Sku

_NUMBER_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


_NUMBER_LENGTH = 18
_NUMBER_BASE = len(_NUMBER_ALPHABET)


def new_order_number() -> str:
    """`KQ` + 18 random characters (~89 bits): unguessable, safe in URLs.

    One uniform draw below 31**18, written in base 31: every character uniform
    and independent, as 18 `secrets.choice` calls (~170 Python calls per checkout).
    """
    n = secrets.randbelow(_NUMBER_BASE**_NUMBER_LENGTH)
    number = "KQ"
    for _position in range(_NUMBER_LENGTH):  # operators: no call per character
        number += _NUMBER_ALPHABET[n % _NUMBER_BASE]
        n //= _NUMBER_BASE
    return number


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

    # Unique by a constraint, not unique=True: that would add a second,
    # varchar_pattern_ops index for LIKE 'prefix%' look-ups nobody makes, written
    # on every order (the same for the other CharFields of the paid path).
    number = models.CharField(_("订单号"), max_length=20, default=new_order_number)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="orders",
        verbose_name=_("用户"),
        # None: a guest order (bought with an email only; orders/guest.py).
        null=True,
        blank=True,
        # order_user_status_idx and order_user_created_idx lead with the user.
        db_index=False,
    )
    email = models.EmailField(_("通知邮箱"))
    # A guest order's keys (orders/guest.py): the lookup password the guest chose,
    # hashed with Django's password hashers, and the sha256 of its access link's
    # token. Both blank for an account's order.
    # (db_default: raw inserts of an account's order, e.g. benchmarks/loadgen.py.)
    lookup_password = models.CharField(
        _("查询密码"),
        max_length=128,
        blank=True,
        editable=False,
        default="",
        db_default="",
    )
    access_token_hash = models.CharField(
        _("访问令牌摘要"),
        max_length=64,
        blank=True,
        editable=False,
        default="",
        db_default="",
    )
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
    # The shopper's device (risk/device.py: a signed cookie's id), for risk limits.
    device_id = models.CharField(max_length=64, blank=True, verbose_name=_("设备"))
    created_at = models.DateTimeField(_("下单时间"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("更新时间"))
    expires_at = models.DateTimeField(_("支付截止"))
    paid_at = models.DateTimeField(_("支付时间"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("发货时间"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("取消时间"), null=True, blank=True)
    # Set by the apps that keep rows about an order (distribution: a reseller
    # credited with it, the API partner that placed it). False: a plain
    # storefront order, and the receivers of the paid path's signals need not
    # look (orders/signals.py `partnered`). Never unset.
    partnered = models.BooleanField(_("分销关联"), default=False, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("订单")
        verbose_name_plural = _("订单")
        # Marking an order paid without a notify is money in on an operator's
        # word: its own permission (orders/aftersales_admin.py), not change_order.
        permissions = [("confirm_paid", _("确认订单已支付"))]
        constraints = [
            models.UniqueConstraint(fields=["number"], name="order_number_unique"),
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
            # A guest's double click: one order per email and checkout token.
            models.UniqueConstraint(
                fields=["email", "client_token"],
                condition=Q(user__isnull=True) & ~Q(client_token=""),
                name="order_guest_client_token_unique",
            ),
        ]
        indexes = [
            models.Index(
                fields=["expires_at"],
                name="order_pending_expiry_idx",
                condition=Q(status="pending"),
            ),
            models.Index(fields=["user", "status"], name="order_user_status_idx"),
            # Risk counters from the database (risk/counters.py): orders per IP,
            # device and account within a window.
            models.Index(
                fields=["ip_address", "created_at"], name="order_ip_created_idx"
            ),
            models.Index(
                fields=["device_id", "created_at"], name="order_device_created_idx"
            ),
            models.Index(fields=["user", "created_at"], name="order_user_created_idx"),
            # Guest orders by email: the per-email checkout limit, and claiming.
            # (a guest's email is stored lower-cased.)
            models.Index(
                fields=["email", "status"],
                name="order_guest_email_idx",
                condition=Q(user__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def is_guest(self) -> bool:
        """Bought without an account (until claimed into one)."""
        return self.user_id is None

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
        indexes = [
            # Risk counters per recharge account, case-insensitive (risk/counters.py
            # queries recharge_account__iexact, i.e. UPPER(...) = UPPER(...)).
            models.Index(
                Upper("recharge_account"), name="orderline_recharge_upper_idx"
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
        # After-sales (orders/services/aftersales.py, problems.py).
        PAID_CONFIRMED = "paid_confirmed", _("人工确认到账")
        LINE_REDELIVERED = "line_redelivered", _("补单")
        CODES_RETURNED = "codes_returned", _("卡密退回")
        PROBLEM_REPORTED = "problem_reported", _("问题反馈")
        PROBLEM_RESOLVED = "problem_resolved", _("问题已处理")
        CODE_REPLACED = "code_replaced", _("更换卡密")
        # A guest order moved into the account of its verified email (orders/guest.py).
        CLAIMED = "claimed", _("游客订单已认领")

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
