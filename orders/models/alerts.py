"""Operator alerts: what was alerted (the once-a-day key) and the digest emails.

An alert is a (kind, SKU, day) row: a SKU running low is alerted at most once a
day, and each "waiting on a human" digest (review queue, failed refunds, open
problem reports, top-ups needing attention) at most once a day, whichever beat
worker gets there first (the unique key decides, not the workers). The alerts
written in one run go out in one digest email per kind, an outbox row sent by
Celery (orders/services/operator_alerts.py).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class OperatorAlertKind(models.TextChoices):
    LOW_STOCK = "low_stock", _("低库存")
    REVIEW = "review", _("待审核订单")
    REFUND_FAILED = "refund_failed", _("失败的退款")
    PROBLEM_OPEN = "problem_open", _("待处理的问题反馈")
    TOPUP_ATTENTION = "topup_attention", _("待人工处理的直充")


class OperatorAlertEmail(models.Model):
    """Outbox: one digest for one kind, written with its alerts, sent by Celery.

    The content is a snapshot taken when the digest was written (`items`), so a
    retry sends what was alerted, not whatever the queue holds hours later.
    """

    Kind = OperatorAlertKind

    class Status(models.TextChoices):
        PENDING = "pending", _("待发送")
        SENDING = "sending", _("发送中")
        SENT = "sent", _("已发送")
        FAILED = "failed", _("失败")

    kind = models.CharField(_("类型"), max_length=20, choices=OperatorAlertKind)
    day = models.DateField(_("日期"))
    to = models.JSONField(_("收件人"), default=list)
    language = models.CharField(_("语言"), max_length=10, blank=True)
    # [{...}] as built by the service; never a card code.
    items = models.JSONField(_("内容"), default=list)
    # Items in the queue when it was written (the email lists at most a few dozen).
    total = models.PositiveIntegerField(_("条目数"), default=0)
    status = models.CharField(
        _("状态"), max_length=10, choices=Status, default=Status.PENDING
    )
    attempts = models.PositiveSmallIntegerField(_("尝试次数"), default=0)
    last_error = models.CharField(_("最近错误"), max_length=200, blank=True)
    claimed_at = models.DateTimeField(_("领取时间"), null=True, blank=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    sent_at = models.DateTimeField(_("发送时间"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("运营提醒邮件")
        verbose_name_plural = _("运营提醒邮件")
        indexes = [
            models.Index(
                fields=["created_at"],
                name="operatoralertemail_unsent_idx",
                condition=Q(status__in=["pending", "sending"]),
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.day} {self.status}"


class OperatorAlert(models.Model):
    """One thing alerted on one day: a low SKU, or a kind of waiting digest."""

    Kind = OperatorAlertKind

    kind = models.CharField(_("类型"), max_length=20, choices=OperatorAlertKind)
    # The SKU running low; none for the waiting digests (one per kind and day).
    sku = models.ForeignKey(
        "catalog.Sku",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("SKU"),
    )
    day = models.DateField(_("日期"))
    email = models.ForeignKey(
        OperatorAlertEmail,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alerts",
        verbose_name=_("提醒邮件"),
    )
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    class Meta:
        ordering = ["-day", "kind", "id"]
        verbose_name = _("运营提醒")
        verbose_name_plural = _("运营提醒")
        constraints = [
            # Once a day per SKU (and per waiting kind, whose SKU is NULL: NULLs
            # must collide here, hence NULLS NOT DISTINCT): a rerun, or two beat
            # workers racing, insert nothing the second time.
            models.UniqueConstraint(
                fields=["kind", "sku", "day"],
                nulls_distinct=False,
                name="operatoralert_once_a_day",
            ),
            models.CheckConstraint(
                condition=Q(kind="low_stock", sku__isnull=False)
                | (~Q(kind="low_stock") & Q(sku__isnull=True)),
                name="operatoralert_sku_iff_low_stock",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.sku_id or '-'} {self.day}"
