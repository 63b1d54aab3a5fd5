"""After-sales: a shopper's problem reports, and every code taken back from a line.

A code taken back from an order line (refunded, or replaced after a report)
leaves the line in the vault (a void or available code names no line: the
vault's constraint), so the link is kept here, with why and by whom. A batch
whose codes were replaced after reports is flagged for an operator to look at.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from orders.models.orders import Order, OrderLine

MESSAGE_MAX = 1000  # a report's message and an operator's reply, in characters


class ProblemReport(models.Model):
    """A shopper says a delivered line is not right; an operator answers once.

    open → replaced (new code from stock) | refunded | replied. One open report
    per line (a constraint); once answered, the shopper may report again.
    """

    class Kind(models.TextChoices):
        CODE_INVALID = "code_invalid", _("卡密无效")
        ALREADY_USED = "already_used", _("卡密已被使用")
        WRONG_ACCOUNT = "wrong_account", _("充值账号错误")
        OTHER = "other", _("其他问题")

    class Status(models.TextChoices):
        OPEN = "open", _("待处理")
        REPLACED = "replaced", _("已更换卡密")
        REFUNDED = "refunded", _("已退款")
        REPLIED = "replied", _("已回复")

    order = models.ForeignKey(
        Order,
        on_delete=models.CASCADE,
        related_name="problem_reports",
        verbose_name=_("订单"),
    )
    line = models.ForeignKey(
        OrderLine,
        on_delete=models.CASCADE,
        related_name="problem_reports",
        verbose_name=_("订单明细"),
    )
    # The code the shopper points at (a line may hold several); none for a top-up.
    code = models.ForeignKey(
        "fulfillment.CardCode",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("卡密"),
    )
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("反馈人"),
    )
    kind = models.CharField(_("问题类型"), max_length=20, choices=Kind)
    message = models.TextField(_("问题描述"), max_length=MESSAGE_MAX)
    status = models.CharField(
        _("状态"), max_length=10, choices=Status, default=Status.OPEN
    )
    reply = models.TextField(_("回复"), max_length=MESSAGE_MAX, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("处理人"),
    )
    # The shopper's language when reporting: the answer's email is written in it.
    language = models.CharField(_("语言"), max_length=10, blank=True)
    created_at = models.DateTimeField(_("反馈时间"), auto_now_add=True)
    resolved_at = models.DateTimeField(_("处理时间"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("问题反馈")
        verbose_name_plural = _("问题反馈")
        constraints = [
            models.UniqueConstraint(
                fields=["line"],
                condition=Q(status="open"),
                name="problemreport_one_open_per_line",
            ),
            models.CheckConstraint(
                condition=Q(status="open") | Q(resolved_at__isnull=False),
                name="problemreport_resolved_has_time",
            ),
        ]
        indexes = [
            models.Index(
                fields=["created_at"],
                name="problemreport_open_idx",
                condition=Q(status="open"),
            )
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_kind_display()} ({self.get_status_display()})"


class ReturnedCode(models.Model):
    """A code taken back from its order line: back on sale, or void (with why)."""

    class Outcome(models.TextChoices):
        RESTOCKED = "restocked", _("退回库存")
        VOIDED = "voided", _("作废")

    class Cause(models.TextChoices):
        REFUND = "refund", _("退款")
        SELF_REFUND = "self_refund", _("买家自助退款")
        REPLACED = "replaced", _("更换")

    code = models.ForeignKey(
        "fulfillment.CardCode",
        on_delete=models.PROTECT,
        related_name="returns",
        verbose_name=_("卡密"),
    )
    line = models.ForeignKey(
        OrderLine,
        on_delete=models.PROTECT,
        related_name="returned_codes",
        verbose_name=_("订单明细"),
    )
    batch = models.ForeignKey(
        "fulfillment.CodeBatch",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("批次"),
    )
    outcome = models.CharField(_("去向"), max_length=10, choices=Outcome)
    cause = models.CharField(_("原因类型"), max_length=12, choices=Cause)
    # Whether its plaintext had left the vault (a reveal or an export): never restocked.
    was_revealed = models.BooleanField(_("曾被查看"), default=False)
    reason = models.CharField(_("原因"), max_length=200)
    report = models.ForeignKey(
        ProblemReport,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="returned_codes",
        verbose_name=_("问题反馈"),
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("操作人"),
    )
    created_at = models.DateTimeField(_("时间"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("退回的卡密")
        verbose_name_plural = _("退回的卡密")
        constraints = [
            # A restocked code may be sold and returned again: one row per return
            # from one line.
            models.UniqueConstraint(
                fields=["code", "line"], name="returnedcode_once_per_line"
            ),
            models.CheckConstraint(
                condition=Q(was_revealed=False) | Q(outcome="voided"),
                name="returnedcode_revealed_is_void",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code_id} ← {self.line_id} {self.outcome}"


class BatchFlag(models.Model):
    """A code batch with codes replaced after shoppers' reports: look at its source."""

    batch = models.OneToOneField(
        "fulfillment.CodeBatch",
        on_delete=models.CASCADE,
        related_name="problem_flag",
        verbose_name=_("批次"),
    )
    replaced_count = models.PositiveIntegerField(_("已更换卡密数"), default=0)
    last_reason = models.CharField(_("最近原因"), max_length=200, blank=True)
    flagged_at = models.DateTimeField(_("首次标记"), auto_now_add=True)
    updated_at = models.DateTimeField(_("最近标记"), auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        verbose_name = _("问题批次")
        verbose_name_plural = _("问题批次")

    def __str__(self) -> str:
        return f"#{self.batch_id} × {self.replaced_count}"
