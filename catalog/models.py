"""Catalog: platforms, products (SPU), SKUs, validity rules, bundle components."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from catalog import validity as validity_rules

SKU_CODE_VALIDATOR = RegexValidator(
    r"^[A-Z0-9][A-Z0-9-]{1,39}$",
    _("SKU 编码只能包含大写字母、数字和连字符，例如 TX-VIP-MONTH。"),
)


class Platform(models.Model):
    class AccountRule(models.TextChoices):
        PHONE = "phone", _("手机号")
        QQ = "qq", _("QQ 号")
        EMAIL = "email", _("邮箱")
        ANY = "any", _("任意账号")

    # What the shopper is asked for, per rule (shown at the checkout field).
    ACCOUNT_HINTS = {
        AccountRule.PHONE: _("11 位中国大陆手机号"),
        AccountRule.QQ: _("5–12 位数字的 QQ 号"),
        AccountRule.EMAIL: _("邮箱地址"),
        AccountRule.ANY: _("平台账号（不含空格，最长 64 个字符）"),
    }

    # The patterns that validate a top-up's recharge account, per rule.
    ACCOUNT_PATTERNS = {
        AccountRule.PHONE: re.compile(r"^1[3-9]\d{9}$"),
        AccountRule.QQ: re.compile(r"^[1-9]\d{4,11}$"),
        AccountRule.EMAIL: re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
        AccountRule.ANY: re.compile(r"^\S{1,64}$"),
    }

    name = models.CharField(_("名称"), max_length=60, unique=True)
    slug = models.SlugField(_("标识"), max_length=60, unique=True)
    account_rule = models.CharField(
        _("充值账号规则"), max_length=10, choices=AccountRule, default=AccountRule.PHONE
    )
    description = models.CharField(_("简介"), max_length=200, blank=True)
    brand_color = models.CharField(
        _("品牌色"),
        max_length=7,
        default="#2f6fed",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$")],
    )
    sort_order = models.PositiveSmallIntegerField(_("排序"), default=100)
    is_active = models.BooleanField(_("上架"), default=True)
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("创建时间"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("更新时间"))

    class Meta:
        ordering = ["sort_order", "id"]
        verbose_name = _("平台")
        verbose_name_plural = _("平台")

    def __str__(self) -> str:
        return self.name

    @property
    def account_hint(self) -> str:
        return str(self.ACCOUNT_HINTS[self.AccountRule(self.account_rule)])

    def is_valid_account(self, account: str) -> bool:
        return bool(
            self.ACCOUNT_PATTERNS[self.AccountRule(self.account_rule)].match(account)
        )


class ValidityRule(models.Model):
    name = models.CharField(_("名称"), max_length=60, unique=True)
    duration_days = models.PositiveIntegerField(
        _("权益时长（天，自激活起）"), null=True, blank=True
    )
    redeem_by = models.DateField(_("兑换截止日期"), null=True, blank=True)
    redeem_within_days = models.PositiveIntegerField(
        _("售出后 N 天内兑换"), null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("创建时间"))

    class Meta:
        ordering = ["name"]
        verbose_name = _("有效期规则")
        verbose_name_plural = _("有效期规则")

    def __str__(self) -> str:
        return self.name

    @property
    def as_value(self) -> validity_rules.Validity:
        return validity_rules.Validity(
            duration_days=self.duration_days,
            redeem_by=self.redeem_by,
            redeem_within_days=self.redeem_within_days,
        )

    @property
    def description(self) -> str:
        return validity_rules.describe(self.as_value)


class Product(models.Model):
    platform = models.ForeignKey(
        Platform,
        on_delete=models.PROTECT,
        related_name="products",
        verbose_name=_("平台"),
    )
    name = models.CharField(_("名称"), max_length=100)
    slug = models.SlugField(_("标识"), max_length=80, unique=True)
    summary = models.CharField(_("一句话介绍"), max_length=200, blank=True)
    usage_rules = models.TextField(_("使用说明"), blank=True)
    redeem_instructions = models.TextField(_("兑换方式"), blank=True)
    sort_order = models.PositiveSmallIntegerField(_("排序"), default=100)
    is_active = models.BooleanField(_("上架"), default=True)
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("创建时间"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("更新时间"))

    class Meta:
        ordering = ["sort_order", "id"]
        verbose_name = _("商品")
        verbose_name_plural = _("商品")

    def __str__(self) -> str:
        return self.name


class Sku(models.Model):
    class Delivery(models.TextChoices):
        CARD_CODE = "card_code", _("卡密")
        DIRECT_TOPUP = "direct_topup", _("直充")
        BUNDLE = "bundle", _("组合包")

    product = models.ForeignKey(
        Product, on_delete=models.PROTECT, related_name="skus", verbose_name=_("商品")
    )
    code = models.CharField(
        _("SKU 编码"), max_length=40, unique=True, validators=[SKU_CODE_VALIDATOR]
    )
    name = models.CharField(_("规格名称"), max_length=100)
    face_value = models.DecimalField(
        _("面值"),
        max_digits=10,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0"))],
    )
    price = models.DecimalField(
        _("售价"),
        max_digits=10,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01"))],
    )
    currency = models.CharField(
        max_length=3, default="CNY", editable=False, verbose_name=_("币种")
    )
    delivery = models.CharField(
        _("发货方式"), max_length=20, choices=Delivery, default=Delivery.CARD_CODE
    )
    validity_rule = models.ForeignKey(
        ValidityRule,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="skus",
        verbose_name=_("有效期规则"),
    )
    min_per_order = models.PositiveSmallIntegerField(_("单笔最少"), default=1)
    max_per_order = models.PositiveSmallIntegerField(_("单笔最多"), default=5)
    sale_starts_at = models.DateTimeField(_("开售时间"), null=True, blank=True)
    sale_ends_at = models.DateTimeField(_("停售时间"), null=True, blank=True)
    is_active = models.BooleanField(_("上架"), default=True)
    low_stock_threshold = models.PositiveIntegerField(_("低库存阈值"), default=10)
    # After-sales (orders/services/aftersales.py): a card code never revealed may be
    # refunded by its buyer in one click within this many hours of delivery.
    self_refund_hours = models.PositiveSmallIntegerField(
        _("自助退款时限（小时）"),
        default=24,
        help_text=_("发货后多少小时内，未查看的卡密可由买家一键退款；0 表示不支持。"),
    )
    sort_order = models.PositiveSmallIntegerField(_("排序"), default=100)
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("创建时间"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("更新时间"))

    class Meta:
        ordering = ["sort_order", "price", "id"]
        verbose_name = _("SKU")
        verbose_name_plural = _("SKU")
        permissions = [("view_sku_stock", _("Can view stock per SKU"))]
        constraints = [
            models.CheckConstraint(condition=Q(price__gt=0), name="sku_price_positive"),
            models.CheckConstraint(
                condition=Q(face_value__gte=0), name="sku_face_value_nonnegative"
            ),
            models.CheckConstraint(
                condition=Q(min_per_order__gte=1), name="sku_min_per_order_positive"
            ),
            models.CheckConstraint(
                condition=Q(max_per_order__gte=F("min_per_order")),
                name="sku_max_gte_min",
            ),
            models.CheckConstraint(
                condition=Q(sale_starts_at__isnull=True)
                | Q(sale_ends_at__isnull=True)
                | Q(sale_ends_at__gt=F("sale_starts_at")),
                name="sku_sale_window_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    def is_on_sale(self, at: dt.datetime | None = None) -> bool:
        """Active, and inside the sale window. Product and platform are checked by selectors."""
        at = at or timezone.now()
        if not self.is_active:
            return False
        if self.sale_starts_at and at < self.sale_starts_at:
            return False
        return not (self.sale_ends_at and at >= self.sale_ends_at)

    @property
    def validity_text(self) -> str:
        return self.validity_rule.description if self.validity_rule else ""


class BundleItem(models.Model):
    """One component of a bundle SKU (联合会员包). Delivered by a later issue."""

    bundle = models.ForeignKey(
        Sku,
        on_delete=models.CASCADE,
        related_name="bundle_items",
        verbose_name=_("组合包"),
    )
    component = models.ForeignKey(
        Sku, on_delete=models.PROTECT, related_name="+", verbose_name=_("组件 SKU")
    )
    quantity = models.PositiveSmallIntegerField(_("数量"), default=1)
    # How the bundle's price is split across its parts, so a part that cannot be
    # delivered is refunded at exactly its share (docs/BUNDLES.md).
    share = models.DecimalField(
        _("价格份额"),
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_(
            "每件组件在组合包售价中的分摊权重；全部组件都填写时按份额×数量分摊，"
            "否则按面值×数量分摊。"
        ),
    )

    class Meta:
        verbose_name = _("组合包组件")
        verbose_name_plural = _("组合包组件")
        constraints = [
            models.UniqueConstraint(
                fields=["bundle", "component"], name="bundle_item_unique"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="bundle_item_quantity_positive"
            ),
            models.CheckConstraint(
                condition=~Q(bundle=F("component")), name="bundle_item_not_self"
            ),
            models.CheckConstraint(
                condition=Q(share__isnull=True) | Q(share__gte=0),
                name="bundle_item_share_nonnegative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.component_id} × {self.quantity}"

    def clean(self) -> None:
        # One level only: a bundle is made of deliverable SKUs, never of bundles.
        errors = {}
        if self.bundle_id and self.bundle.delivery != Sku.Delivery.BUNDLE:
            errors["bundle"] = _("只有“组合包”类型的 SKU 才能有组件")
        if self.component_id and self.component.delivery == Sku.Delivery.BUNDLE:
            errors["component"] = _("组合包不能包含另一个组合包")
        if errors:
            raise ValidationError(errors)
