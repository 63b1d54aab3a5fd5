"""The order email outbox."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from orders.models.aftersales import ProblemReport
from orders.models.orders import Order
from orders.models.payments import Refund


class OrderEmail(models.Model):
    """Outbox: written in the order's transaction, sent by Celery, retried by beat."""

    class Kind(models.TextChoices):
        DELIVERED = "delivered", _("发货通知")
        REFUNDED = "refunded", _("退款通知")
        PROBLEM_ANSWERED = "problem_answered", _("问题反馈处理通知")

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
    # Problem-report answers are one per report.
    report = models.OneToOneField(
        ProblemReport,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="email",
        verbose_name=_("问题反馈"),
    )
    # "" : the site's default language.
    language = models.CharField(_("语言"), max_length=10, blank=True)
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
                condition=Q(refund__isnull=True, report__isnull=True),
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
