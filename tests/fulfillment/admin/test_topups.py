"""The top-up admin: the list operators work from, the timeline (never a secret),
and retry / fail over / refund through the services, refusals shown as messages."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from fulfillment.models import SupplierAttempt, TopUp, TopUpEvent
from orders.models import OrderLine, Refund
from tests.factories.accounts import UserFactory
from tests.factories.fulfillment import (
    attempt_make,
    mapping_make,
    request_event_make,
    supplier_make,
    supplier_ready,
    topup_make,
)
from tests.fulfillment.topups.conftest import pay, place_topup

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:fulfillment_topup_changelist")
# Session, user, permissions (user and group), the supplier filter's choices, the
# page's count and the page itself (one query: the attempt count and the current
# supplier are subqueries): the same however many top-ups are listed (7 measured).
TOPUP_CHANGELIST_MAX_QUERIES = 7
# Session, user, permissions (user and group), the top-up (with its order and
# SKU), its attempts, its timeline and the change form's content type (cached per
# process): the same however many events it has (8 measured).
TOPUP_CHANGE_MAX_QUERIES = 8

SIGN = "5d41402abc4b2a76b9719d911017c592SIGNATURE"
CARD_SECRET = "ENVELOPE-c2VjcmV0LWNhcmQtY29kZQ"
CARD_NUMBER = "6222000011112222"


def _change(topup: TopUp) -> str:
    return reverse("admin:fulfillment_topup_change", args=[topup.pk])


def _operate(topup: TopUp, operation: str) -> str:
    return reverse("admin:fulfillment_topup_operate", args=[topup.pk, operation])


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def _action(client, action: str, *topups: TopUp):
    return client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [t.pk for t in topups]},
        follow=True,
    )


@pytest.fixture
def mapping(topup_sku):
    return supplier_ready(
        mapping_make(topup_sku, supplier_make("acme"), "P-TX-VIP-MONTH")
    )


@pytest.fixture
def viewer_client(client, topup_sku):
    """Staff who may look at top-ups but not operate them."""
    user = UserFactory(username="viewer", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(
            codename="view_topup", content_type__app_label="fulfillment"
        )
    )
    client.force_login(user)
    return client


@pytest.fixture
def pending(client, alice, sim_supplier):
    """A paid top-up whose worker has not run yet: pending, no attempt."""
    pay(client, place_topup(alice))
    return TopUp.objects.get()


@pytest.fixture
def placed(
    client, alice, sim_supplier, supplier_simulator, django_capture_on_commit_callbacks
):
    """A top-up the simulator has accepted and is still working on."""
    supplier_simulator.faults(processing_seconds=120)
    with django_capture_on_commit_callbacks(execute=True):
        pay(client, place_topup(alice))
    topup = TopUp.objects.get()
    assert topup.status == TopUp.Status.WAITING
    assert topup.attempts.get().status == SupplierAttempt.Status.PLACED
    return topup


# --- the list -------------------------------------------------------------------


def test_topup_changelist_shows_order_link_sku_masked_account_and_supplier(
    operator_client, mapping, topup_sku
):
    topup = topup_make(topup_sku, account="13812345678", next_poll_at=None)
    attempt_make(topup, mapping, status="rejected")
    attempt_make(topup, mapping, status="placed")

    response = operator_client.get(CHANGELIST)

    html = response.content.decode()
    order = topup.order_line.order
    assert response.status_code == 200
    assert reverse("admin:orders_order_change", args=[order.pk]) in html
    assert order.number in html
    assert "TX-DIRECT" in html
    assert "138****5678" in html
    assert "13812345678" not in html
    (row,) = response.context["cl"].result_list
    assert (row.attempt_count, row.current_supplier_name) == (2, "acme")


def test_topup_changelist_query_count_does_not_grow_with_topups(
    operator_client, mapping, topup_sku, django_assert_max_num_queries
):
    attempt_make(topup_make(topup_sku), mapping)
    with django_assert_max_num_queries(TOPUP_CHANGELIST_MAX_QUERIES):
        operator_client.get(CHANGELIST)

    for n in range(10):
        topup = topup_make(topup_sku, account=f"1000{n}00")
        attempt_make(topup, mapping, status="failed")
        attempt_make(topup, mapping, status="placed")

    with django_assert_max_num_queries(TOPUP_CHANGELIST_MAX_QUERIES):
        response = operator_client.get(CHANGELIST)

    assert len(response.context["cl"].result_list) == 11


def test_topup_changelist_marks_open_topups_past_their_deadline(
    operator_client, topup_sku
):
    topup_make(
        topup_sku, age=dt.timedelta(hours=2), deadline_in=dt.timedelta(minutes=30)
    )

    response = operator_client.get(CHANGELIST)

    assert "已超过到账期限" in response.content.decode()


def test_needs_a_human_filter_lists_flagged_and_overdue_open_topups(
    operator_client, topup_sku
):
    flagged = topup_make(topup_sku, needs_attention=True)
    overdue = topup_make(topup_sku, status="pending", age=dt.timedelta(hours=1))
    topup_make(topup_sku)  # open, within its deadline
    topup_make(topup_sku, status="succeeded", age=dt.timedelta(hours=1))
    topup_make(topup_sku, status="failed", age=dt.timedelta(days=2))

    response = operator_client.get(CHANGELIST, {"human": "yes"})

    listed = {t.pk for t in response.context["cl"].result_list}
    assert listed == {flagged.pk, overdue.pk}
    assert "只看待人工处理的直充" in response.content.decode()


@pytest.mark.parametrize(
    ("band", "expected"),
    [
        ("lt5m", {"1m"}),
        ("5to30m", {"10m"}),
        ("gt30m", {"2h", "3d"}),
        ("gt1d", {"3d"}),
    ],
)
def test_age_filter_bands(operator_client, topup_sku, band, expected):
    ages = {
        "1m": dt.timedelta(minutes=1),
        "10m": dt.timedelta(minutes=10),
        "2h": dt.timedelta(hours=2),
        "3d": dt.timedelta(days=3),
    }
    made = {name: topup_make(topup_sku, age=age).pk for name, age in ages.items()}

    response = operator_client.get(CHANGELIST, {"age": band})

    listed = {t.pk for t in response.context["cl"].result_list}
    assert listed == {made[name] for name in expected}


def test_supplier_filter_lists_topups_any_attempt_went_to_once(
    operator_client, topup_sku, mapping
):
    other = mapping_make(topup_sku, supplier_make("other"), "P-2")
    both = topup_make(topup_sku)
    attempt_make(both, mapping, status="rejected")
    attempt_make(both, mapping, status="rejected")
    attempt_make(both, other, status="placed")
    only_other = topup_make(topup_sku)
    attempt_make(only_other, other)
    topup_make(topup_sku)  # no attempt yet

    response = operator_client.get(CHANGELIST, {"supplier": mapping.supplier_id})
    bad = operator_client.get(CHANGELIST, {"supplier": "x"})

    assert [t.pk for t in response.context["cl"].result_list] == [both.pk]
    assert bad.status_code == 200
    assert list(bad.context["cl"].result_list) == []


def test_status_and_needs_attention_filters(operator_client, topup_sku):
    waiting = topup_make(topup_sku, status="waiting", needs_attention=True)
    topup_make(topup_sku, status="succeeded")

    by_status = operator_client.get(CHANGELIST, {"status__exact": "waiting"})
    by_flag = operator_client.get(CHANGELIST, {"needs_attention__exact": "1"})

    assert [t.pk for t in by_status.context["cl"].result_list] == [waiting.pk]
    assert [t.pk for t in by_flag.context["cl"].result_list] == [waiting.pk]


def test_search_finds_topup_by_order_number_attempt_number_and_account(
    operator_client, topup_sku, mapping
):
    wanted = topup_make(topup_sku, account="987654321")
    attempt_make(wanted, mapping, number="KQT-WANTED-1")
    attempt_make(wanted, mapping, status="rejected", number="KQT-WANTED-2")
    topup_make(topup_sku, account="111222333")

    for term in (wanted.order_line.order.number, "KQT-WANTED-1", "987654321"):
        response = operator_client.get(CHANGELIST, {"q": term})

        assert [t.pk for t in response.context["cl"].result_list] == [wanted.pk]


# --- the detail page --------------------------------------------------------------


def test_topup_change_page_shows_attempts_and_timeline_read_only(
    operator_client, topup_sku, mapping, django_assert_max_num_queries
):
    topup = topup_make(topup_sku, fail_reason="", next_poll_at=None)
    attempt = attempt_make(
        topup,
        mapping,
        status="rejected",
        number="KQT-DETAIL-1",
        error_code=2003,
        last_error="2003 库存不足",
        placements=1,
        supplier_order_id="SIM-77",
    )
    request_event_make(
        topup,
        mapping.supplier,
        attempt=attempt,
        latency_ms=1234,
        ok=False,
        http_status=200,
        note="out of stock",
        request={"biz": {"charge_account": "123456789"}, "sign": "***"},
        response={"code": 2003, "message": "库存不足"},
    )

    with django_assert_max_num_queries(TOPUP_CHANGE_MAX_QUERIES):
        response = operator_client.get(_change(topup))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="_save"' not in html
    for shown in ("KQT-DETAIL-1", "SIM-77", "2003 库存不足", "1234 ms", "out of stock"):
        assert shown in html
    assert "&quot;message&quot;: &quot;库存不足&quot;" in html
    assert "<pre>" in html


def test_topup_change_query_count_does_not_grow_with_events(
    operator_client, topup_sku, mapping, django_assert_max_num_queries
):
    topup = topup_make(topup_sku)
    attempt = attempt_make(topup, mapping)
    for _ in range(30):
        request_event_make(topup, mapping.supplier, attempt=attempt)

    with django_assert_max_num_queries(TOPUP_CHANGE_MAX_QUERIES):
        response = operator_client.get(_change(topup))

    assert len(response.context["timeline"]) == 30


def test_timeline_shows_only_the_latest_events_and_says_so(
    operator_client, topup_sku, mapping, monkeypatch
):
    monkeypatch.setattr("fulfillment.admin.topups.TIMELINE_MAX_EVENTS", 5)
    topup = topup_make(topup_sku)
    for n in range(7):
        request_event_make(topup, mapping.supplier, note=f"step-{n}")

    response = operator_client.get(_change(topup))
    whole = topup_make(topup_sku)
    request_event_make(whole, mapping.supplier, note="only")
    short = operator_client.get(_change(whole))

    notes = [row["event"].note for row in response.context["timeline"]]
    assert notes == [f"step-{n}" for n in range(2, 7)]
    assert "更早的已省略" in response.content.decode()
    assert "更早的已省略" not in short.content.decode()


def test_timeline_of_a_real_topup_never_shows_a_signature_or_the_secret(
    operator_client,
    client,
    alice,
    sim_supplier,
    supplier_simulator,
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        pay(client, place_topup(alice))
    topup = TopUp.objects.get()
    assert topup.status == TopUp.Status.WAITING  # placed; the reply is on record

    response = operator_client.get(_change(topup))

    html = response.content.decode()
    requests = TopUpEvent.objects.filter(topup=topup, kind="request")
    assert requests.exists()
    for event in requests:
        assert event.request["sign"] == "***"
        assert event.response is None or event.response.get("sign") == "***"
    assert "order.direct.add" in html
    assert "&quot;sign&quot;: &quot;***&quot;" in html
    assert supplier_simulator.secret not in html
    assert sim_supplier.secret_ciphertext not in html


def test_timeline_masks_signatures_and_card_secrets_even_if_stored_unredacted(
    operator_client, topup_sku, mapping
):
    topup = topup_make(topup_sku)
    request_event_make(
        topup,
        mapping.supplier,
        method="order.card.get",
        request={"app_key": "app", "sign": SIGN, "biz": {"customer_order_no": "N1"}},
        response={
            "code": 0,
            "sign": SIGN,
            "data": {
                "state": "success",
                "cards": [{"number": CARD_NUMBER, "secret": CARD_SECRET}],
            },
        },
    )

    response = operator_client.get(_change(topup))

    html = response.content.decode()
    assert response.status_code == 200
    assert "order.card.get" in html
    for secret in (SIGN, CARD_SECRET, CARD_NUMBER):
        assert secret not in html
    assert "&quot;secret&quot;: &quot;***&quot;" in html


# --- actions from the list ----------------------------------------------------------


def test_retry_now_action_schedules_a_step_and_clears_the_flag(
    operator_client, pending, django_capture_on_commit_callbacks
):
    TopUp.objects.filter(pk=pending.pk).update(needs_attention=True)

    with django_capture_on_commit_callbacks() as callbacks:
        response = _action(operator_client, "retry_now", pending)

    pending.refresh_from_db()
    assert response.status_code == 200
    assert any("已处理 1 个直充" in m for m in _messages(response))
    assert not pending.needs_attention
    assert len(callbacks) == 1  # the step is dispatched after commit
    assert pending.events.filter(kind="action", note__startswith="retry now").exists()


def test_refund_action_refunds_the_line_of_a_topup_nobody_accepted(
    operator_client, pending
):
    response = _action(operator_client, "refund", pending)

    pending.refresh_from_db()
    line = OrderLine.objects.get(pk=pending.order_line_id)
    assert any("已处理 1 个直充" in m for m in _messages(response))
    assert pending.status == TopUp.Status.FAILED
    assert pending.fail_code == "operator"
    assert line.status == OrderLine.Status.REFUNDED
    assert Refund.objects.get().amount == line.amount


def test_actions_refused_by_the_service_are_messages_and_change_nothing(
    operator_client, placed
):
    fail_over = _action(operator_client, "fail_over", placed)
    refund = _action(operator_client, "refund", placed)

    placed.refresh_from_db()
    number = placed.order_line.order.number
    assert fail_over.status_code == refund.status_code == 200
    (over_msg,) = _messages(fail_over)
    (refund_msg,) = _messages(refund)
    assert number in over_msg
    assert "不能切换" in over_msg
    assert "不能退款" in refund_msg
    assert placed.status == TopUp.Status.WAITING
    assert placed.attempts.get().status == SupplierAttempt.Status.PLACED
    assert not Refund.objects.exists()


def test_retry_now_on_a_finished_topup_says_so(operator_client, topup_sku, pending):
    done = topup_make(topup_sku, status="succeeded")

    response = _action(operator_client, "retry_now", done, pending)

    messages = _messages(response)
    assert any("无需重试" in m and f"#{done.pk}" in m for m in messages)
    assert any("已处理 1 个直充" in m for m in messages)


def test_fail_over_action_moves_a_topup_with_no_accepted_attempt_on(
    operator_client, pending
):
    response = _action(operator_client, "fail_over", pending)

    pending.refresh_from_db()
    assert any("已处理 1 个直充" in m for m in _messages(response))
    assert pending.status == TopUp.Status.WAITING
    assert pending.next_poll_at <= timezone.now()  # due: the next step tries another
    assert pending.events.filter(kind="action", note__startswith="fail over").exists()


# --- buttons on the detail page ---------------------------------------------------


def test_detail_page_offers_the_three_operations_to_operators(operator_client, pending):
    response = operator_client.get(_change(pending))

    html = response.content.decode()
    for operation in ("retry", "fail-over", "refund"):
        assert _operate(pending, operation) in html


def test_detail_refund_button_refunds_and_returns_to_the_page(operator_client, pending):
    response = operator_client.post(_operate(pending, "refund"))
    page = operator_client.get(response["Location"])

    pending.refresh_from_db()
    assert response.status_code == 302
    assert response["Location"] == _change(pending)
    assert pending.status == TopUp.Status.FAILED
    assert any("已处理 1 个直充" in m for m in _messages(page))


def test_detail_button_refusal_is_a_message_not_an_error(operator_client, placed):
    response = operator_client.post(_operate(placed, "fail-over"), follow=True)

    assert response.status_code == 200
    assert any("不能切换" in m for m in _messages(response))
    assert placed.attempts.get().status == SupplierAttempt.Status.PLACED


def test_detail_operations_refuse_get_and_unknown_names(operator_client, pending):
    assert operator_client.get(_operate(pending, "refund")).status_code == 405
    assert operator_client.post(_operate(pending, "explode")).status_code == 404
    pending.refresh_from_db()
    assert pending.status == TopUp.Status.PENDING


# --- permissions ---------------------------------------------------------------------


def test_staff_without_change_topup_sees_no_actions_and_cannot_operate(
    viewer_client, pending
):
    page = viewer_client.get(CHANGELIST)
    detail = viewer_client.get(_change(pending))
    action = _action(viewer_client, "refund", pending)
    button = viewer_client.post(_operate(pending, "refund"))

    pending.refresh_from_db()
    assert page.status_code == detail.status_code == 200
    assert "retry_now" not in page.content.decode()
    assert _operate(pending, "refund") not in detail.content.decode()
    assert action.status_code == 200
    assert button.status_code == 403
    assert pending.status == TopUp.Status.PENDING
    assert not Refund.objects.exists()


def test_topup_admin_is_read_only_even_for_superuser(admin_client, pending):
    add = admin_client.get(reverse("admin:fulfillment_topup_add"))
    post = admin_client.post(_change(pending), {"status": "succeeded"})
    delete = admin_client.get(
        reverse("admin:fulfillment_topup_delete", args=[pending.pk])
    )

    pending.refresh_from_db()
    assert (add.status_code, post.status_code, delete.status_code) == (403, 403, 403)
    assert pending.status == TopUp.Status.PENDING


def test_operators_hold_topup_permissions(operator):
    for perm in (
        "fulfillment.view_topup",
        "fulfillment.change_topup",
        "fulfillment.view_supplierattempt",
        "fulfillment.view_topupevent",
        "fulfillment.view_suppliercallback",
        "orders.change_refund",
    ):
        assert operator.has_perm(perm)
    assert not operator.has_perm("fulfillment.delete_topup")


# --- supplier attempts ------------------------------------------------------------


def test_attempt_changelist_finds_an_attempt_by_either_number(
    operator_client, topup_sku, mapping
):
    topup = topup_make(topup_sku)
    attempt_make(topup, mapping, number="KQT-FIND-ME", supplier_order_id="SIM-42")
    attempt_make(topup_make(topup_sku), mapping)
    url = reverse("admin:fulfillment_supplierattempt_changelist")

    for term in ("KQT-FIND-ME", "SIM-42"):
        response = operator_client.get(url, {"q": term})

        (row,) = response.context["cl"].result_list
        assert row.customer_order_no == "KQT-FIND-ME"
    assert _change(topup) in response.content.decode()
