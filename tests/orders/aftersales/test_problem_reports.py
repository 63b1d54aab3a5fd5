"""Problem reports: the shopper reports, the operator replaces, refunds or replies."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse

from fulfillment.models import CardCode
from orders.models import (
    BatchFlag,
    OrderEmail,
    OrderEvent,
    ProblemReport,
    Refund,
    ReturnedCode,
)
from orders.services import order_place
from orders.services.problems import (
    ProblemReportError,
    problem_report_open,
    problem_report_refund,
    problem_report_replace,
    problem_report_reply,
)

pytestmark = pytest.mark.django_db


def report_url(order, line=None):
    line = line or order.lines.get()
    return reverse("orders:line-report", args=[order.number, line.id])


def page(client, order):
    return client.get(reverse("orders:order-detail", args=[order.number]))


@pytest.fixture
def report(alice, paid_order):
    line = paid_order.lines.get()
    return problem_report_open(
        order=paid_order,
        line_id=line.id,
        user=alice,
        kind=ProblemReport.Kind.CODE_INVALID,
        message="兑换时提示卡密无效",
        code_id=line.codes.order_by("id").first().id,
        language="zh-hans",
    )


def test_shopper_reports_a_problem_on_the_order_page(alice_client, paid_order):
    line = paid_order.lines.get()
    code = line.codes.order_by("id").first()

    response = alice_client.post(
        report_url(paid_order),
        {"kind": "already_used", "code": code.id, "message": "提示已被使用"},
        follow=True,
    )

    text = response.content.decode()
    assert "已收到您的问题反馈" in text
    assert "客服处理中" in text
    assert "提示已被使用" in text
    report = ProblemReport.objects.get()
    assert (report.kind, report.code, report.status) == ("already_used", code, "open")
    assert OrderEvent.objects.filter(kind="problem_reported").exists()


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"kind": "code_invalid", "message": ""}, "message", "请描述遇到的问题"),
        ({"kind": "code_invalid", "message": "长" * 1001}, "message", "最长 1000 个字"),
        ({"kind": "nonsense", "message": "x"}, "kind", "请选择问题类型"),
        ({"message": "x"}, "kind", "请选择问题类型"),
        (
            {"kind": "other", "message": "x", "code": "99999"},
            "code",
            "请选择该明细中的一张卡密",
        ),
    ],
)
def test_a_bad_report_comes_back_with_the_error_at_its_field(
    alice_client, paid_order, data, field, message
):
    response = alice_client.post(report_url(paid_order), data)

    assert response.status_code == 400
    assert message in response.context["report_form"].errors[field][0]
    assert (
        f'id="report-{paid_order.lines.get().id}-{field}' in response.content.decode()
    )
    assert not ProblemReport.objects.exists()


def test_a_nul_byte_is_refused_before_and_by_the_service(
    alice, alice_client, paid_order
):
    line = paid_order.lines.get()

    response = alice_client.post(
        report_url(paid_order), {"kind": "other", "message": "a\x00b"}
    )

    assert response.status_code == 400  # config/lib/nul.py, before any view
    with pytest.raises(ProblemReportError, match="不允许的字符") as caught:
        problem_report_open(
            order=paid_order,
            line_id=line.id,
            user=alice,
            kind="other",
            message="a\x00b",
        )
    assert caught.value.field == "message"
    assert not ProblemReport.objects.exists()


def test_one_open_report_per_line(alice, report, paid_order):
    with pytest.raises(ProblemReportError, match="已有一条待处理"):
        problem_report_open(
            order=paid_order,
            line_id=report.line_id,
            user=alice,
            kind="other",
            message="again",
        )


def test_a_line_not_delivered_cannot_be_reported(alice, sku):
    order = order_place(user=alice, sku_code=sku.code, quantity=1)

    with pytest.raises(ProblemReportError, match="只有已发货的明细"):
        problem_report_open(
            order=order,
            line_id=order.lines.get().id,
            user=alice,
            kind="other",
            message="x",
        )


def test_another_shopper_can_neither_report_nor_see_a_report(
    client, mallory, report, paid_order
):
    client.force_login(mallory)

    response = client.post(report_url(paid_order), {"kind": "other", "message": "x"})

    assert response.status_code == 404
    assert page(client, paid_order).status_code == 404
    assert ProblemReport.objects.count() == 1
    with pytest.raises(ProblemReportError):
        problem_report_open(
            order=paid_order,
            line_id=report.line_id,
            user=mallory,
            kind="other",
            message="x",
        )


def test_replace_voids_the_old_code_flags_its_batch_and_the_shopper_sees_a_new_one(
    alice_client, operator, report, paid_order, django_capture_on_commit_callbacks
):
    line = paid_order.lines.get()
    old = report.code
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        problem_report_replace(
            report_id=report.id, actor=operator, reply="已核实无效，已为您更换"
        )

    old.refresh_from_db()
    report.refresh_from_db()
    assert (old.status, old.order_line_id) == ("void", None)
    returned = ReturnedCode.objects.get(code=old)
    assert (returned.line, returned.outcome, returned.cause, returned.report) == (
        line,
        "voided",
        "replaced",
        report,
    )
    assert returned.reason == "已核实无效，已为您更换"
    flag = BatchFlag.objects.get(batch=old.batch)
    assert flag.replaced_count == 1
    sold = line.codes.filter(status="sold")
    assert sold.count() == 2
    new = sold.order_by("-id").first()  # the newest code: claimed from stock now
    assert new.pk > old.pk
    assert (report.status, report.resolved_by) == ("replaced", operator)
    text = page(alice_client, paid_order).content.decode()
    assert "已为您更换卡密" in text
    assert "已核实无效，已为您更换" in text
    assert new.hint in text
    assert old.hint not in text
    reveal = alice_client.post(
        reverse("orders:code-reveal", args=[paid_order.number, new.id]),
        HTTP_ACCEPT="application/json",
    )
    assert reveal.status_code == 200
    assert reveal.json()["code"]
    assert (
        alice_client.post(
            reverse("orders:code-reveal", args=[paid_order.number, old.id]),
            HTTP_ACCEPT="application/json",
        ).status_code
        == 400
    )
    assert len(mail.outbox) == 1
    assert "已为您更换卡密" in mail.outbox[0].body
    assert OrderEmail.objects.get(report=report).status == OrderEmail.Status.SENT


def test_replace_without_stock_leaves_the_report_open(operator, report, sku):
    CardCode.objects.filter(sku=sku, status="available").update(status="void")

    with pytest.raises(ProblemReportError, match="库存不足"):
        problem_report_replace(report_id=report.id, actor=operator, reply="换一张")

    report.refresh_from_db()
    report.code.refresh_from_db()
    assert report.status == "open"
    assert report.code.status == "sold"
    assert not BatchFlag.objects.exists()


def test_report_answered_twice_is_answered_once(operator, report):
    problem_report_reply(report_id=report.id, actor=operator, reply="请重启 App 再试")

    with pytest.raises(ProblemReportError, match="已处理"):
        problem_report_replace(report_id=report.id, actor=operator, reply="换")

    report.refresh_from_db()
    assert (report.status, report.reply) == ("replied", "请重启 App 再试")
    assert report.code.status == "sold"


def test_refund_answer_refunds_the_line_and_voids_its_codes(
    alice_client, operator, report, paid_order, django_capture_on_commit_callbacks
):
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        problem_report_refund(
            report_id=report.id, actor=operator, reply="无法更换，已退款"
        )

    report.refresh_from_db()
    paid_order.refresh_from_db()
    refund = Refund.objects.get()
    assert report.status == "refunded"
    assert (refund.status, refund.amount, refund.actor_kind) == (
        Refund.Status.SUCCEEDED,
        Decimal("50.00"),
        "operator",
    )
    assert paid_order.status == "refunded"
    assert set(ReturnedCode.objects.values_list("outcome", "report")) == {
        ("voided", report.id)
    }
    assert "无法更换，已退款" in page(alice_client, paid_order).content.decode()
    subjects = sorted(m.subject for m in mail.outbox)
    assert len(subjects) == 2  # the answer, and the refund once the gateway confirmed


def test_reply_shows_on_the_order_page_and_by_email(
    alice_client, operator, report, paid_order, django_capture_on_commit_callbacks
):
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        problem_report_reply(
            report_id=report.id, actor=operator, reply="请按说明重新兑换"
        )

    text = page(alice_client, paid_order).content.decode()
    assert "请按说明重新兑换" in text
    assert "已回复" in text
    assert "再次反馈" in text  # answered: the shopper may report again
    (message,) = mail.outbox
    assert message.to == ["alice@example.com"]
    assert "请按说明重新兑换" in message.body
    html = message.alternatives[0][0]
    assert "请按说明重新兑换" in html
    assert paid_order.number in message.subject


def test_operator_answers_from_admin_with_errors_at_their_fields(
    operator_client, report, django_capture_on_commit_callbacks
):
    url = reverse("admin:orders_problemreport_answer", args=[report.id])
    assert operator_client.get(url).status_code == 200

    bad = operator_client.post(
        url, {"decision": "reply", "reply": "", "request_key": "k"}
    )
    assert bad.status_code == 400
    assert bad.context["form"].errors["reply"] == ["请填写回复"]

    with django_capture_on_commit_callbacks(execute=True):
        good = operator_client.post(
            url,
            {
                "decision": "replace",
                "codes": [report.code_id],
                "reply": "已更换",
                "request_key": "k",
            },
        )

    assert good.status_code == 302
    report.refresh_from_db()
    assert report.status == "replaced"
    again = operator_client.post(
        url, {"decision": "reply", "reply": "x", "request_key": "k"}
    )
    assert again.status_code == 400
    assert "已处理" in again.context["form"].non_field_errors()[0]
