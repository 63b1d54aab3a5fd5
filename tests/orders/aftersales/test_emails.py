"""After-sales emails, text and HTML, in the shopper's language (Chinese or English)."""

from __future__ import annotations

import contextlib

import pytest
from celery.exceptions import Retry
from django.core import mail

from orders.models import ProblemReport
from orders.services.problems import (
    problem_report_open,
    problem_report_refund,
    problem_report_replace,
    problem_report_reply,
)
from orders.services.self_refund import line_self_refund

pytestmark = pytest.mark.django_db

ANSWERS = {
    "reply": problem_report_reply,
    "replace": problem_report_replace,
    "refund": problem_report_refund,
}
# (language, subject, a line of the body per answer)
WORDS = {
    "zh-hans": (
        "的问题反馈已处理",
        {
            "reply": "处理结果：客服已回复。",
            "replace": "处理结果：已为您更换卡密",
            "refund": "处理结果：已为您退款",
        },
        "客服回复：",
    ),
    "en": (
        "has been answered",
        {
            "reply": "Outcome: our support team has replied.",
            "replace": "Outcome: your code has been replaced",
            "refund": "Outcome: you have been refunded",
        },
        "Support's reply:",
    ),
}


def report_in(language, order, user):
    line = order.lines.get()
    return problem_report_open(
        order=order,
        line_id=line.id,
        user=user,
        kind=ProblemReport.Kind.ALREADY_USED,
        message="used",
        code_id=line.codes.order_by("id").first().id,
        language=language,
    )


@pytest.mark.parametrize("language", ["zh-hans", "en"])
@pytest.mark.parametrize("answer", ["reply", "replace", "refund"])
def test_problem_answer_email_in_the_shoppers_language(
    alice, operator, paid_order, language, answer, django_capture_on_commit_callbacks
):
    report = report_in(language, paid_order, alice)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        ANSWERS[answer](report_id=report.id, actor=operator, reply="回复 <b>hi</b>")

    subject, outcomes, reply_label = WORDS[language]
    message = next(m for m in mail.outbox if subject in m.subject)
    assert paid_order.number in message.subject
    assert outcomes[answer] in message.body
    assert reply_label in message.body
    assert "回复 <b>hi</b>" in message.body  # text: as written
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert f'lang="{language}"' in html
    assert outcomes[answer].split("：")[-1].split(":")[0][:6] in html
    assert "回复 &lt;b&gt;hi&lt;/b&gt;" in html  # HTML: escaped
    assert "/orders/" + paid_order.number in message.body
    for code in paid_order.lines.get().codes.all():
        assert code.hint not in message.body  # no code in an email, not even masked


@pytest.mark.parametrize(
    ("language", "subject", "body"),
    [
        ("zh-hans", "已退款", "本次退款：¥50.00"),
        ("en", "has been refunded", "This refund: ¥50.00"),
    ],
)
def test_self_refund_email_in_the_shoppers_language(
    alice, paid_order, language, subject, body, django_capture_on_commit_callbacks
):
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        line_self_refund(
            order_id=paid_order.id,
            line_id=paid_order.lines.get().id,
            user=alice,
            language=language,
        )

    (message,) = mail.outbox
    assert subject in message.subject
    assert body in message.body
    assert message.alternatives[0][1] == "text/html"


def test_a_failed_send_never_blocks_the_answer(
    alice, operator, paid_order, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "tests.orders.aftersales.test_emails.BrokenBackend"
    report = report_in("zh-hans", paid_order, alice)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        problem_report_reply(report_id=report.id, actor=operator, reply="好的")
    for callback in callbacks:
        # Eager here; on a worker in production: the task retries later, and the
        # answer was committed before it ever ran.
        with contextlib.suppress(Retry, ConnectionError):
            callback()

    report.refresh_from_db()
    assert report.status == "replied"
    email = report.email
    assert email.status == "pending"
    assert "ConnectionError" in email.last_error


class BrokenBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionError("smtp down")
