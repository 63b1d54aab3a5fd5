"""Suppliers we buy top-ups and cards from, and how each SKU maps to their products."""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MinValueValidator, URLValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

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
