"""Resellers (代理), their tiers and prices, and who brought which shopper and order."""

from __future__ import annotations

import secrets
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

# No 0/O, 1/I/L: a code read aloud or typed from a poster survives.
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
REFERRAL_CODE_LENGTH = 8  # 31^8 ≈ 8.5e11: short enough to type, too many to guess
MAX_DEPTH = 3  # a reseller tree is at most three levels deep (SPEC §2)

RATE_VALIDATORS = [MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("1"))]


def new_referral_code() -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(REFERRAL_CODE_LENGTH))


class Tier(models.Model):
    """A reseller grade (普通代理, 高级代理, 总代): wholesale prices and commission overrides.

    A SKU's wholesale price for the tier is its TierPrice when one exists, else
    the retail price less `discount_rate` (distribution/tiers.py). Commission
    overrides per tier are CommissionRule rows naming the tier.
    """

    name = models.CharField(_("名称"), max_length=40, unique=True)
    discount_rate = models.DecimalField(
        _("零售价折扣率"),
        max_digits=5,
        decimal_places=4,
        default=Decimal("0"),
        validators=RATE_VALIDATORS,
        help_text=_(
            "没有单独设置批发价的 SKU，按零售价减去这个比例，例如 0.1 即九折。"
        ),
    )
    # The tier an approved reseller gets unless the operator picks another.
    is_default = models.BooleanField(_("默认等级"), default=False)
    sort_order = models.PositiveSmallIntegerField(_("排序"), default=100)
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("创建时间"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("更新时间"))

    class Meta:
        ordering = ["sort_order", "id"]
        verbose_name = _("代理等级")
        verbose_name_plural = _("代理等级")
        constraints = [
            models.CheckConstraint(
                condition=Q(discount_rate__gte=0) & Q(discount_rate__lte=1),
                name="tier_discount_rate_range",
            ),
            models.UniqueConstraint(
                fields=["is_default"],
                condition=Q(is_default=True),
                name="tier_one_default",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class TierPrice(models.Model):
    """A tier's wholesale price for one SKU, overriding the tier's discount."""

    tier = models.ForeignKey(
        Tier, on_delete=models.CASCADE, related_name="prices", verbose_name=_("等级")
    )
    sku = models.ForeignKey(
        "catalog.Sku", on_delete=models.CASCADE, related_name="+", verbose_name=_("SKU")
    )
    price = models.DecimalField(
        _("批发价"),
        max_digits=10,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01"))],
    )

    class Meta:
        ordering = ["tier", "sku"]
        verbose_name = _("等级批发价")
        verbose_name_plural = _("等级批发价")
        constraints = [
            models.UniqueConstraint(fields=["tier", "sku"], name="tierprice_unique"),
            models.CheckConstraint(
                condition=Q(price__gt=0), name="tierprice_price_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tier_id}/{self.sku_id} ¥{self.price}"


class MinimumResalePrice(models.Model):
    """The lowest price a sub-store may show for a SKU (stops price breaking and 窜货).

    Kept here, not on Sku: the catalog knows nothing of resellers.
    """

    sku = models.OneToOneField(
        "catalog.Sku",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("SKU"),
    )
    price = models.DecimalField(
        _("最低零售价"),
        max_digits=10,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01"))],
    )
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("更新时间"))

    class Meta:
        verbose_name = _("最低零售价")
        verbose_name_plural = _("最低零售价")
        constraints = [
            models.CheckConstraint(
                condition=Q(price__gt=0), name="minimumresaleprice_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku_id} ≥ ¥{self.price}"


class Reseller(models.Model):
    """A shopper who sells for the shop: status, tier, referral code, upline, sub-store.

    The tree: `parent` is the upline, `depth` 1 for a reseller without one, at
    most MAX_DEPTH. Binding happens once (parent from NULL to a reseller, never
    changed after) in `reseller_bind_parent`, which locks the rows it reads and
    refuses cycles; the depth CHECK is the database's last word.
    """

    class Status(models.TextChoices):
        APPLIED = "applied", _("待审核")
        APPROVED = "approved", _("已通过")
        REJECTED = "rejected", _("已拒绝")
        SUSPENDED = "suspended", _("已停用")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="reseller",
        verbose_name=_("用户"),
    )
    status = models.CharField(
        _("状态"), max_length=10, choices=Status, default=Status.APPLIED
    )
    application_note = models.CharField(_("申请说明"), max_length=500, blank=True)
    # Why the last decision was taken, and by whom (an operator; NULL: the system).
    status_reason = models.CharField(_("状态原因"), max_length=200, blank=True)
    status_changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("操作人"),
    )
    status_changed_at = models.DateTimeField(_("状态变更时间"), null=True, blank=True)
    approved_at = models.DateTimeField(_("通过时间"), null=True, blank=True)
    tier = models.ForeignKey(
        Tier,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="resellers",
        verbose_name=_("等级"),
    )
    referral_code = models.CharField(
        _("推广码"), max_length=16, unique=True, default=new_referral_code
    )
    parent = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="children",
        verbose_name=_("上级代理"),
    )
    depth = models.PositiveSmallIntegerField(_("层级"), default=1)
    # The sub-store (分站, /s/<slug>/): shown once a slug is set.
    substore_slug = models.SlugField(
        _("分站标识"), max_length=40, unique=True, null=True, blank=True
    )
    substore_name = models.CharField(_("分站名称"), max_length=60, blank=True)
    substore_announcement = models.CharField(_("分站公告"), max_length=300, blank=True)
    substore_contact = models.CharField(_("客服联系方式"), max_length=100, blank=True)
    markup_rate = models.DecimalField(
        _("加价比例"),
        max_digits=5,
        decimal_places=4,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("5"))],
        help_text=_("分站售价 = 等级批发价 ×（1 + 加价比例），且不低于最低零售价。"),
    )
    created_at = models.DateTimeField(_("申请时间"), auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("更新时间"))

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("代理")
        verbose_name_plural = _("代理")
        constraints = [
            models.CheckConstraint(
                condition=Q(depth__gte=1) & Q(depth__lte=MAX_DEPTH),
                name="reseller_depth_range",
            ),
            # A root is depth 1; anyone with an upline is deeper.
            models.CheckConstraint(
                condition=(Q(parent__isnull=True) & Q(depth=1))
                | (Q(parent__isnull=False) & Q(depth__gte=2)),
                name="reseller_depth_matches_parent",
            ),
            models.CheckConstraint(
                condition=~Q(parent=F("id")), name="reseller_not_own_parent"
            ),
            models.CheckConstraint(
                condition=Q(markup_rate__gte=0), name="reseller_markup_nonnegative"
            ),
            models.CheckConstraint(
                condition=~Q(status="approved") | Q(approved_at__isnull=False),
                name="reseller_approved_has_time",
            ),
        ]
        indexes = [models.Index(fields=["status"], name="reseller_status_idx")]

    def __str__(self) -> str:
        return f"{self.referral_code}"

    @property
    def is_approved(self) -> bool:
        return self.status == self.Status.APPROVED


class CustomerBinding(models.Model):
    """Who brought a shopper: set once, when they sign up through a referral link."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="reseller_binding",
        verbose_name=_("用户"),
    )
    reseller = models.ForeignKey(
        Reseller,
        on_delete=models.PROTECT,
        related_name="bound_customers",
        verbose_name=_("代理"),
    )
    created_at = models.DateTimeField(_("绑定时间"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("客户绑定")
        verbose_name_plural = _("客户绑定")

    def __str__(self) -> str:
        return f"{self.user_id} → {self.reseller_id}"


class OrderAttribution(models.Model):
    """Which reseller an order is credited to, and how it got there.

    Kept here, not on Order, so orders need no migration for resellers. One per
    order (the first attribution wins).
    """

    class Channel(models.TextChoices):
        REFERRAL_LINK = "referral_link", _("推广链接")
        BOUND_CUSTOMER = "bound_customer", _("绑定客户")
        SUBSTORE = "substore", _("分站")

    order = models.OneToOneField(
        "orders.Order",
        on_delete=models.CASCADE,
        related_name="attribution",
        verbose_name=_("订单"),
    )
    reseller = models.ForeignKey(
        Reseller,
        on_delete=models.PROTECT,
        related_name="attributions",
        verbose_name=_("代理"),
    )
    channel = models.CharField(_("来源"), max_length=20, choices=Channel)
    # A sub-store order: what the shopper paid above the reseller's own
    # wholesale price, at placement. It is their earning (ledger level 0).
    margin = models.DecimalField(
        _("分站差价"), max_digits=12, decimal_places=2, default=0
    )
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("订单归属")
        verbose_name_plural = _("订单归属")
        indexes = [
            models.Index(
                fields=["reseller", "created_at"], name="attribution_reseller_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.order_id} → {self.reseller_id} ({self.channel})"
