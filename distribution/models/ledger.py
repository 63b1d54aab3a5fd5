"""Commission rules, the append-only commission ledger and payouts.

The ledger (docs/DECISIONS.md, "The commission ledger"):

- `earn` (+): a level's commission on a delivered line, written once per
  (line, level). pending → available after the settlement window → paid by a
  payout; or pending → void when its line is refunded in full before then.
- `void` (−): the refunded share of a still-pending earn (partial refund). It
  travels with its earn: settles when it settles, is voided when it is voided.
- `reverse` (−): the refunded share of an earn already settled (available or
  paid). Written available: it may take the available balance below zero until
  later earnings cover it.

Rows are only ever inserted, and then change only along the state machine by
conditional UPDATEs (pending → available → paid, pending → void); `payout`
links a settled row to the payout request that holds it (unlinked again only
when that request is rejected). Balances are sums over the rows, never stored:

    pending   = Σ amount where state = pending
    available = Σ amount where state = available and no open payout holds it
    requested = Σ amount where state = available and an open payout holds it
    paid      = Σ amount where state = paid        (= Σ approved payouts)
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from distribution.models.resellers import RATE_VALIDATORS, Reseller, Tier

LEVELS = (1, 2, 3)


class CommissionRule(models.Model):
    """A level's commission rate, globally or for one tier, one SKU, or both.

    The most specific rule wins (distribution/commissions.py, `rule_pick`):
    SKU and tier > SKU > tier > global. The tier is the earning reseller's own
    tier at that level; the SKU is the one the shopper chose (a bundle's, for
    its parts).
    """

    level = models.PositiveSmallIntegerField(
        _("层级"), choices=[(n, str(n)) for n in LEVELS]
    )
    rate = models.DecimalField(
        _("佣金比例"),
        max_digits=5,
        decimal_places=4,
        validators=RATE_VALIDATORS,
        help_text=_("按实付金额计算，例如 0.05 即 5%。"),
    )
    tier = models.ForeignKey(
        Tier,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="commission_rules",
        verbose_name=_("等级"),
    )
    sku = models.ForeignKey(
        "catalog.Sku",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("SKU"),
    )
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("更新时间"))

    class Meta:
        ordering = ["level", "sku", "tier", "id"]
        verbose_name = _("佣金规则")
        verbose_name_plural = _("佣金规则")
        constraints = [
            # One rule per (level, tier, sku), blanks included (NULLS NOT DISTINCT).
            models.UniqueConstraint(
                fields=["level", "tier", "sku"],
                name="commissionrule_unique",
                nulls_distinct=False,
            ),
            models.CheckConstraint(
                condition=Q(level__gte=1) & Q(level__lte=3),
                name="commissionrule_level_range",
            ),
            models.CheckConstraint(
                condition=Q(rate__gte=0) & Q(rate__lte=1),
                name="commissionrule_rate_range",
            ),
        ]

    def __str__(self) -> str:
        return f"L{self.level} {self.rate}"


class Payout(models.Model):
    """A reseller's withdrawal of their whole available balance; an operator decides.

    The entries it withdraws point at it (`CommissionEntry.payout`) from the
    request on; approval turns them paid, rejection releases them.
    """

    class Status(models.TextChoices):
        REQUESTED = "requested", _("待审核")
        APPROVED = "approved", _("已打款")
        REJECTED = "rejected", _("已拒绝")

    reseller = models.ForeignKey(
        Reseller,
        on_delete=models.PROTECT,
        related_name="payouts",
        verbose_name=_("代理"),
    )
    amount = models.DecimalField(_("金额"), max_digits=12, decimal_places=2)
    currency = models.CharField(
        max_length=3, default="CNY", editable=False, verbose_name=_("币种")
    )
    status = models.CharField(
        _("状态"), max_length=10, choices=Status, default=Status.REQUESTED
    )
    # The bank or wallet transfer's number, recorded by the operator who paid.
    transfer_reference = models.CharField(_("转账凭证号"), max_length=100, blank=True)
    reason = models.CharField(_("拒绝原因"), max_length=200, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("操作人"),
    )
    requested_at = models.DateTimeField(_("申请时间"), default=timezone.now)
    decided_at = models.DateTimeField(_("处理时间"), null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        verbose_name = _("提现")
        verbose_name_plural = _("提现")
        constraints = [
            # One open request per reseller: a balance is never asked for twice.
            models.UniqueConstraint(
                fields=["reseller"],
                condition=Q(status="requested"),
                name="payout_one_open_per_reseller",
            ),
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="payout_amount_positive"
            ),
            models.CheckConstraint(
                condition=Q(status="requested")
                | (Q(decided_at__isnull=False) & Q(decided_by__isnull=False)),
                name="payout_decision_recorded",
            ),
            models.CheckConstraint(
                condition=~Q(status="approved") | ~Q(transfer_reference=""),
                name="payout_approved_has_reference",
            ),
            models.CheckConstraint(
                condition=~Q(status="rejected") | ~Q(reason=""),
                name="payout_rejected_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} ¥{self.amount} {self.status}"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.REQUESTED


class CommissionEntry(models.Model):
    """One row of the append-only commission ledger (see the module docstring)."""

    class Kind(models.TextChoices):
        EARN = "earn", _("佣金")
        VOID = "void", _("结算前退款冲减")
        REVERSE = "reverse", _("结算后退款冲回")

    class State(models.TextChoices):
        PENDING = "pending", _("待结算")
        AVAILABLE = "available", _("可提现")
        PAID = "paid", _("已提现")
        VOID = "void", _("已作废")

    reseller = models.ForeignKey(
        Reseller,
        on_delete=models.PROTECT,
        related_name="commission_entries",
        verbose_name=_("代理"),
    )
    order_line = models.ForeignKey(
        "orders.OrderLine",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("订单明细"),
    )
    level = models.PositiveSmallIntegerField(_("层级"))
    kind = models.CharField(_("类型"), max_length=10, choices=Kind)
    amount = models.DecimalField(_("金额"), max_digits=12, decimal_places=2)
    # Snapshots from the earn: refunds claw back at the rate that was paid.
    rate = models.DecimalField(_("佣金比例"), max_digits=5, decimal_places=4)
    # Earn: what the shopper paid for the line; void/reverse: what is left of it.
    base_amount = models.DecimalField(_("计佣金额"), max_digits=12, decimal_places=2)
    state = models.CharField(_("状态"), max_length=10, choices=State)
    reverses = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="adjustments",
        verbose_name=_("冲减的佣金"),
    )
    payout = models.ForeignKey(
        Payout,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="entries",
        verbose_name=_("提现"),
    )
    created_at = models.DateTimeField(_("创建时间"), default=timezone.now)
    # When a pending row becomes available (created_at + COMMISSION_SETTLEMENT_DAYS).
    available_at = models.DateTimeField(_("可结算时间"))
    settled_at = models.DateTimeField(_("结算时间"), null=True, blank=True)
    voided_at = models.DateTimeField(_("作废时间"), null=True, blank=True)
    paid_at = models.DateTimeField(_("提现时间"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("佣金明细")
        verbose_name_plural = _("佣金明细")
        constraints = [
            # Idempotency of commission_on_line_delivered: one earn per line and level.
            models.UniqueConstraint(
                fields=["order_line", "level"],
                condition=Q(kind="earn"),
                name="commission_earn_once_per_line_level",
            ),
            # Level 0: a sub-store's own margin; 1..3: commissions up the tree.
            models.CheckConstraint(
                condition=Q(level__gte=0) & Q(level__lte=3),
                name="commission_level_range",
            ),
            models.CheckConstraint(
                condition=(Q(kind="earn") & Q(amount__gt=0) & Q(reverses__isnull=True))
                | (
                    Q(kind__in=["void", "reverse"])
                    & Q(amount__lt=0)
                    & Q(reverses__isnull=False)
                ),
                name="commission_kind_sign",
            ),
            models.CheckConstraint(
                condition=Q(rate__gte=0) & Q(rate__lte=1),
                name="commission_rate_range",
            ),
            # A clawback after settlement is settled money from the start.
            models.CheckConstraint(
                condition=~Q(kind="reverse") | Q(state__in=["available", "paid"]),
                name="commission_reverse_settled",
            ),
            models.CheckConstraint(
                condition=~Q(state__in=["available", "paid"])
                | Q(settled_at__isnull=False),
                name="commission_settled_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(state="void") | Q(voided_at__isnull=False),
                name="commission_void_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(state="paid")
                | (Q(payout__isnull=False) & Q(paid_at__isnull=False)),
                name="commission_paid_has_payout",
            ),
            # Only settled money can be held by a payout.
            models.CheckConstraint(
                condition=Q(payout__isnull=True) | Q(state__in=["available", "paid"]),
                name="commission_payout_only_settled",
            ),
        ]
        indexes = [
            models.Index(fields=["reseller", "state"], name="commission_balance_idx"),
            # The settlement sweep reads only the pending rows, oldest due first.
            models.Index(
                fields=["available_at"],
                name="commission_pending_due_idx",
                condition=Q(state="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} L{self.level} ¥{self.amount} ({self.state})"
