"""Problem reports: a shopper says a delivered line is wrong; an operator answers once.

The shopper reports on a delivered line of their own order ("code invalid",
"already used", "wrong account", other) with a message. An operator, in admin
(orders/aftersales_admin.py), answers it in one of three ways:

- replace: the reported code is voided with the operator's words as the reason,
  kept linked to its line (ReturnedCode), its batch flagged (BatchFlag); a new
  code comes from stock through the same claim as checkout and is revealed to
  the shopper on the order page like any code;
- refund: the line's money back (orders/services/aftersales.py), its codes
  voided;
- reply: words only.

The answer is written with a claim (open → answered, once: a second click or a
second operator finds it answered) and the shopper is emailed in the language
they reported in (the outbox: orders/services/emails.py; a failed send never
blocks). Lock order: Order → ProblemReport → CardCode.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from catalog.models import Sku
from config.lib.errors import DomainError
from fulfillment.models import CardCode
from fulfillment.services import OutOfStockError
from fulfillment.services.code_returns import card_codes_sell_more
from orders.locks import order_lock_for_update_by_id
from orders.models import (
    BatchFlag,
    Order,
    OrderEmail,
    OrderEvent,
    OrderLine,
    ProblemReport,
    ReturnedCode,
)
from orders.models.aftersales import MESSAGE_MAX
from orders.services.aftersales import (
    REASON_MAX,
    AfterSalesError,
    line_codes_take_back,
    order_refund_by_operator,
)
from orders.services.emails import order_email_queue

PS = ProblemReport.Status

ERR_NOT_FOUND = _("订单明细不存在")
ERR_NOT_DELIVERED = _("只有已发货的明细可以反馈问题")
ERR_ALREADY_OPEN = _("该明细已有一条待处理的问题反馈，请等待客服处理")
ERR_KIND = _("请选择问题类型")
ERR_MESSAGE_REQUIRED = _("请描述遇到的问题")
ERR_MESSAGE_TOO_LONG = _("问题描述最长 1000 个字")
ERR_NUL = _("内容含有不允许的字符")
ERR_CODE = _("请选择该明细中的一张卡密")
ERR_ANSWERED = _("该问题反馈已处理（%(status)s），未做任何操作")
ERR_NOT_CODES = _("只有卡密明细可以更换卡密")
ERR_CHOOSE_CODES = _("请选择要更换的卡密")
ERR_NO_STOCK = _("库存不足：“%(sku)s”没有可用于更换的卡密，请先补充库存")


class ProblemReportError(DomainError):
    """A report or its answer refused; `field` names the form field it is about."""

    code = "problem_report_refused"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def message_clean(value: str) -> str:
    """A report's message or an operator's reply: stripped, no NUL, 1–1000 characters.

    Raises: ProblemReportError at `message`.
    """
    text = (value or "").strip()
    if "\x00" in text:
        raise ProblemReportError(str(ERR_NUL), field="message")
    if not text:
        raise ProblemReportError(str(ERR_MESSAGE_REQUIRED), field="message")
    if len(text) > MESSAGE_MAX:
        raise ProblemReportError(str(ERR_MESSAGE_TOO_LONG), field="message")
    return text


def problem_report_open(
    *,
    order: Order,
    line_id: int,
    user: User | None,
    kind: str,
    message: str,
    code_id: int | None = None,
    language: str = "",
) -> ProblemReport:
    """The shopper reports a problem with a delivered line of their own order.

    `user` None: the buyer of a guest order, whose access the caller checked
    (the report then has no reporter; replies go to the order's email).

    Raises: ProblemReportError (not theirs / not delivered: code "not_found" or
    the field's error; one open report per line, a constraint).
    """
    if (order.user_id != user.pk) if user is not None else not order.is_guest:
        raise ProblemReportError(str(ERR_NOT_FOUND))
    line = OrderLine.objects.filter(pk=line_id, order_id=order.id).first()
    if line is None or line.is_bundle:
        raise ProblemReportError(str(ERR_NOT_FOUND))
    if line.status != OrderLine.Status.DELIVERED:
        raise ProblemReportError(str(ERR_NOT_DELIVERED))
    if kind not in ProblemReport.Kind.values:
        raise ProblemReportError(str(ERR_KIND), field="kind")
    text = message_clean(message)
    if (
        code_id is not None
        and not CardCode.objects.filter(
            pk=code_id, order_line_id=line.id, status=CardCode.Status.SOLD
        ).exists()
    ):
        raise ProblemReportError(str(ERR_CODE), field="code")
    try:
        with transaction.atomic():
            report = ProblemReport.objects.create(
                order=order,
                line=line,
                code_id=code_id,
                reporter=user,
                kind=kind,
                message=text,
                language=language[:10],
            )
            OrderEvent.objects.create(
                order=order,
                kind=OrderEvent.Kind.PROBLEM_REPORTED,
                actor=user,
                detail={"report": report.id, "line": line.id, "kind": kind},
            )
    except IntegrityError:  # problemreport_one_open_per_line
        raise ProblemReportError(str(ERR_ALREADY_OPEN)) from None
    return report


@dataclass(frozen=True)
class _Claimed:
    order: Order
    report: ProblemReport


def _claim(
    *, report_id: int, status: str, reply: str, actor: User, now: dt.datetime
) -> _Claimed:
    """Lock the order, then answer the report if it is still open (the claim).

    Runs in the caller's transaction. Raises: ProblemReportError when answered.
    """
    order_id = (
        ProblemReport.objects.filter(pk=report_id)
        .values_list("order_id", flat=True)
        .first()
    )
    order = order_lock_for_update_by_id(order_id=order_id) if order_id else None
    if order is None:
        raise ProblemReportError(str(ERR_NOT_FOUND))
    claimed = ProblemReport.objects.filter(pk=report_id, status=PS.OPEN).update(
        status=status, reply=reply, resolved_by=actor, resolved_at=now
    )
    report = ProblemReport.objects.select_related("line__sku").get(pk=report_id)
    if claimed != 1:
        raise ProblemReportError(
            str(ERR_ANSWERED) % {"status": report.get_status_display()}
        )
    return _Claimed(order=order, report=report)


def _answered(*, claimed: _Claimed, actor: User, detail: dict[str, object]) -> None:
    """Record the answer on the order and queue the shopper's email."""
    report = claimed.report
    OrderEvent.objects.create(
        order=claimed.order,
        kind=OrderEvent.Kind.PROBLEM_RESOLVED,
        actor=actor,
        detail={"report": report.id, "status": report.status, **detail},
    )
    order_email_queue(
        order=claimed.order,
        kind=OrderEmail.Kind.PROBLEM_ANSWERED,
        report=report,
        language=report.language,
    )


def problem_report_reply(*, report_id: int, actor: User, reply: str) -> ProblemReport:
    """Answer a report in words only; the shopper sees it on the order page and by email.

    Locks: Order. Raises: ProblemReportError. Idempotent: answered once.
    """
    text = message_clean(reply)
    now = timezone.now()
    with transaction.atomic():
        claimed = _claim(
            report_id=report_id, status=PS.REPLIED, reply=text, actor=actor, now=now
        )
        _answered(claimed=claimed, actor=actor, detail={})
    return claimed.report


def problem_report_replace(
    *,
    report_id: int,
    actor: User,
    reply: str,
    code_ids: list[int] | None = None,
) -> ProblemReport:
    """Replace the reported codes with new ones from stock.

    1. Lock the order; claim the report (open → replaced).
    2. The codes to replace: `code_ids`, else the reported code, else the line's
       only code. They are voided with `reply` as the reason, each kept linked
       to the line (ReturnedCode), their batches flagged (BatchFlag).
    3. As many codes from stock through the checkout's claim, sold to the line.
    4. The order's history names old and new codes by hint; the shopper is emailed.
    Locks: Order → CardCode (free ones SKIP LOCKED).
    Raises: ProblemReportError (nothing written; no stock: the report stays open).
    Idempotent: answered once.
    """
    text = message_clean(reply)
    now = timezone.now()
    with transaction.atomic():
        claimed = _claim(
            report_id=report_id, status=PS.REPLACED, reply=text, actor=actor, now=now
        )
        report, line = claimed.report, claimed.report.line
        if line.delivery != Sku.Delivery.CARD_CODE:
            raise ProblemReportError(str(ERR_NOT_CODES))
        wanted = _codes_to_replace(report=report, code_ids=code_ids)
        old = line_codes_take_back(
            order=claimed.order,
            line=line,
            restock=False,
            cause=ReturnedCode.Cause.REPLACED,
            reason=text[:REASON_MAX],
            now=now,
            actor=actor,
            report=report,
            code_ids=wanted,
        )
        if not old:
            raise ProblemReportError(str(ERR_CHOOSE_CODES), field="codes")
        try:
            new_ids = card_codes_sell_more(
                sku=line.sku, order_line_id=line.id, quantity=len(old), now=now
            )
        except OutOfStockError:  # raised inside: everything above rolls back
            raise ProblemReportError(
                str(ERR_NO_STOCK) % {"sku": line.sku_name}
            ) from None
        _batches_flag(batch_ids=[t.batch_id for t in old], reason=text[:REASON_MAX])
        OrderEvent.objects.create(
            order=claimed.order,
            kind=OrderEvent.Kind.CODE_REPLACED,
            actor=actor,
            detail={
                "report": report.id,
                "line": line.id,
                "old": [t.hint for t in old],
                "new": list(
                    CardCode.objects.filter(id__in=new_ids)
                    .order_by("id")
                    .values_list("hint", flat=True)
                ),
            },
        )
        _answered(claimed=claimed, actor=actor, detail={"replaced": len(old)})
    return claimed.report


def _codes_to_replace(
    *, report: ProblemReport, code_ids: list[int] | None
) -> list[int]:
    if code_ids:
        return code_ids
    if report.code_id is not None:
        return [report.code_id]
    sold = list(
        CardCode.objects.filter(
            order_line_id=report.line_id, status=CardCode.Status.SOLD
        ).values_list("id", flat=True)[:2]
    )
    if len(sold) != 1:
        raise ProblemReportError(str(ERR_CHOOSE_CODES), field="codes")
    return sold


def _batches_flag(*, batch_ids: list[int], reason: str) -> None:
    """Count the replaced codes against their batches (one flag row per batch)."""
    for batch_id in sorted(set(batch_ids)):
        count = batch_ids.count(batch_id)
        flag, created = BatchFlag.objects.get_or_create(
            batch_id=batch_id,
            defaults={"replaced_count": count, "last_reason": reason},
        )
        if not created:
            BatchFlag.objects.filter(pk=flag.pk).update(
                replaced_count=F("replaced_count") + count,
                last_reason=reason,
                updated_at=Now(),
            )


def problem_report_refund(
    *, report_id: int, actor: User, reply: str, request_key: str = ""
) -> ProblemReport:
    """Answer a report by refunding what is left of its line; its codes are voided.

    Locks: Order → CardCode. Raises: ProblemReportError, AfterSalesError,
    RefundError (nothing written). Idempotent: answered once.
    """
    text = message_clean(reply)
    now = timezone.now()
    with transaction.atomic():
        claimed = _claim(
            report_id=report_id, status=PS.REFUNDED, reply=text, actor=actor, now=now
        )
        line = claimed.report.line
        try:
            refund = order_refund_by_operator(
                order_id=claimed.order.id,
                amounts={line.id: line.refundable_amount},
                reason=text[:REASON_MAX],
                actor=actor,
                codes="void",
                request_key=request_key,
                language=claimed.report.language,
                report=claimed.report,
                now=now,
            )
        except AfterSalesError as exc:
            raise ProblemReportError(exc.message) from None
        _answered(
            claimed=claimed,
            actor=actor,
            detail={"refund_no": refund.refund_no, "amount": str(refund.amount)},
        )
    return claimed.report
