"""Risk rules, block/allow lists and the record of every evaluation (issue 7).

Rules are data operators edit in admin; their logic lives in risk/rules.py.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Subject(models.TextChoices):
    """Whom a counter or a list entry is about."""

    IP = "ip", _("IP 地址")
    DEVICE = "device", _("设备")
    ACCOUNT = "account", _("账号")
    RECHARGE_ACCOUNT = "recharge_account", _("充值账号")
    EMAIL_DOMAIN = "email_domain", _("邮箱域名")


class RiskRule(models.Model):
    class Kind(models.TextChoices):
        VELOCITY_ORDERS = "velocity_orders", _("下单频率（笔数）")
        VELOCITY_AMOUNT = "velocity_amount", _("下单频率（金额）")
        SKU_LIMIT = "sku_limit", _("每账号商品限购")
        ORDER_QUANTITY = "order_quantity", _("单笔数量上限")
        NEW_ACCOUNT = "new_account", _("新账号限额")
        DISTINCT_RECHARGE_ACCOUNTS = "distinct_recharge_accounts", _("多个充值账号")
        UNPAID_ORDERS = "unpaid_orders", _("未支付订单数")
        BLOCKLIST = "blocklist", _("黑名单")
        ALLOWLIST = "allowlist", _("白名单")
        DISPOSABLE_EMAIL = "disposable_email", _("一次性邮箱")

    class Scope(models.TextChoices):
        ALL = "all", _("全部商品")
        PLATFORM = "platform", _("平台")
        SKU = "sku", _("规格")

    class StageChoice(models.TextChoices):
        CHECKOUT = "checkout", _("下单前")
        PAID = "paid", _("支付后")
        BOTH = "both", _("两者")

    class ActionChoice(models.TextChoices):
        ALLOW = "allow", _("放行")
        CAPTCHA = "captcha", _("验证码")
        # Guests must log in first; an account's checkout goes on (allow).
        LOGIN = "login", _("要求登录")
        REVIEW = "review", _("人工审核")
        BLOCK = "block", _("拦截")

    name = models.CharField(_("名称"), max_length=100)
    kind = models.CharField(_("类型"), max_length=40, choices=Kind)
    stage = models.CharField(
        _("阶段"), max_length=10, choices=StageChoice, default=StageChoice.CHECKOUT
    )
    scope = models.CharField(_("范围"), max_length=10, choices=Scope, default=Scope.ALL)
    platform = models.ForeignKey(
        "catalog.Platform",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        verbose_name=_("平台"),
    )
    sku = models.ForeignKey(
        "catalog.Sku",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        verbose_name=_("规格"),
    )
    # Counted per whom (velocity, unpaid orders, distinct recharge accounts) or
    # matched against which list (block/allow lists).
    subject = models.CharField(
        _("对象"), max_length=20, choices=Subject, blank=True, default=""
    )
    window_seconds = models.PositiveIntegerField(
        _("时间窗口（秒）"),
        null=True,
        blank=True,
        help_text=_("留空表示不限时间（终身）；新账号规则中为账号年龄上限"),
    )
    threshold = models.DecimalField(
        _("阈值"),
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text=_("笔数、数量或金额（元）：超过即触发"),
    )
    action = models.CharField(_("处置"), max_length=10, choices=ActionChoice)
    priority = models.PositiveIntegerField(
        _("优先级"), default=100, help_text=_("数字越小越先生效")
    )
    active = models.BooleanField(_("启用"), default=True)
    note = models.CharField(_("备注"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)
    # Since when the counts this rule reads have been kept as it reads them.
    # Reset when what it counts changes (COUNTING_FIELDS), not when an operator
    # tunes its threshold, action or priority: Redis answers the rule's window
    # alone only once the window fits after this moment (risk/counters.py), so a
    # threshold raised in the middle of a flash sale keeps the counts in Redis.
    counting_since = models.DateTimeField(
        _("计数起点"), default=timezone.now, editable=False
    )

    COUNTING_FIELDS: ClassVar[tuple[str, ...]] = (
        "kind",
        "stage",
        "scope",
        "platform_id",
        "sku_id",
        "subject",
        "window_seconds",
        "active",
    )

    class Meta:
        ordering = ["priority", "id"]
        verbose_name = _("风控规则")
        verbose_name_plural = _("风控规则")

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            before = (
                type(self)
                .objects.filter(pk=self.pk)
                .values(*self.COUNTING_FIELDS)
                .first()
            )
            if before is not None and any(
                before[f] != getattr(self, f) for f in self.COUNTING_FIELDS
            ):
                self.counting_since = timezone.now()
                update_fields = kwargs.get("update_fields")
                if update_fields is not None:
                    kwargs["update_fields"] = {*update_fields, "counting_since"}
        super().save(*args, **kwargs)


class RiskListEntry(models.Model):
    """One value on the block or allow list: an IP or CIDR, an email domain,
    a device id, an account (user id) or a recharge account."""

    class ListKind(models.TextChoices):
        BLOCK = "block", _("黑名单")
        ALLOW = "allow", _("白名单")

    list_kind = models.CharField(_("名单"), max_length=10, choices=ListKind)
    subject = models.CharField(_("对象"), max_length=20, choices=Subject)
    value = models.CharField(_("值"), max_length=200)
    note = models.CharField(_("备注"), max_length=200, blank=True)
    active = models.BooleanField(_("启用"), default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("创建人"),
    )
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        ordering = ["list_kind", "subject", "value"]
        verbose_name = _("黑白名单")
        verbose_name_plural = _("黑白名单")
        constraints = [
            models.UniqueConstraint(
                fields=["list_kind", "subject", "value"], name="risk_list_entry_unique"
            )
        ]

    def __str__(self) -> str:
        return (
            f"{self.get_list_kind_display()} {self.get_subject_display()} {self.value}"
        )


class RiskEvaluation(models.Model):
    """One decision: stage, inputs (no secrets), the rules that fired, the outcome."""

    stage = models.CharField(_("阶段"), max_length=10)
    decision = models.CharField(_("结果"), max_length=10, choices=RiskRule.ActionChoice)
    fired = models.JSONField(_("触发规则"), default=list, blank=True)
    inputs = models.JSONField(_("输入"), default=dict, blank=True)
    order = models.ForeignKey(
        "orders.Order",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="risk_evaluations",
        verbose_name=_("订单"),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("用户"),
    )
    ip_address = models.GenericIPAddressField(_("IP 地址"), null=True, blank=True)
    device = models.CharField(_("设备"), max_length=64, blank=True)
    created_at = models.DateTimeField(_("时间"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("风控记录")
        verbose_name_plural = _("风控记录")
        indexes = [
            models.Index(
                fields=["decision", "created_at"],
                name="risk_eval_flagged_idx",
                condition=~Q(decision="allow"),
            )
        ]

    def __str__(self) -> str:
        return f"{self.stage} {self.decision}"
