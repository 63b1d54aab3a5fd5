"""A shopper applies to become a reseller at /reseller/apply/ and sees where it stands."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from distribution.models import Reseller
from distribution.services import reseller_approve, reseller_reject, reseller_suspend
from tests.factories.distribution import ResellerFactory

APPLY = "/reseller/apply/"
GOOD = {
    "display_name": "小爱的会员铺",
    "contact": "微信 alice_vip",
    "note": "在两个 500 人的群里推广",
}


def _html(response) -> str:
    return response.content.decode()


def _field_errors(html: str, name: str) -> str:
    match = re.search(rf'id="{name}-errors"[^>]*>(.*?)</ul>', html, re.S)
    return match.group(1) if match else ""


@pytest.mark.django_db
class TestApply:
    def test_apply_sends_anonymous_visitors_to_log_in(self, client):
        get = client.get(APPLY)
        post = client.post(APPLY, GOOD)

        assert get.status_code == post.status_code == 302
        assert get["Location"].startswith(reverse("account_login"))
        assert not Reseller.objects.exists()

    def test_apply_page_shows_the_form_with_labelled_fields(self, alice_client):
        response = alice_client.get(APPLY)

        html = _html(response)
        assert response.status_code == 200
        for name in ("display_name", "contact", "note"):
            assert f'<label class="field-label" for="id_{name}">' in html
            assert f'id="id_{name}"' in html

    def test_shopper_applies_and_then_sees_the_application_pending(
        self, alice, alice_client
    ):
        response = alice_client.post(APPLY, GOOD, follow=True)

        reseller = Reseller.objects.get(user=alice)
        assert (reseller.status, reseller.substore_name, reseller.substore_contact) == (
            "applied",
            "小爱的会员铺",
            "微信 alice_vip",
        )
        assert reseller.application_note == "在两个 500 人的群里推广"
        html = _html(response)
        assert response.redirect_chain == [(APPLY, 302)]
        assert "申请已提交" in html
        assert "待审核" in html
        assert "小爱的会员铺" in html
        assert 'name="display_name"' not in html  # no second form while it is open

    def test_apply_twice_keeps_one_application_as_first_submitted(
        self, alice, alice_client
    ):
        alice_client.post(APPLY, GOOD)
        response = alice_client.post(APPLY, {**GOOD, "display_name": "改过的名字"})

        assert response.status_code == 302
        reseller = Reseller.objects.get(user=alice)
        assert reseller.substore_name == "小爱的会员铺"

    @pytest.mark.parametrize(
        ("data", "field", "message"),
        [
            ({**GOOD, "display_name": "  "}, "display_name", "请填写对外显示的名称"),
            ({**GOOD, "contact": ""}, "contact", "请填写联系方式"),
            ({**GOOD, "display_name": "名" * 61}, "display_name", "60"),
            ({**GOOD, "note": "x" * 501}, "note", "500"),
        ],
    )
    def test_bad_application_is_refused_at_its_field(
        self, alice_client, data, field, message
    ):
        response = alice_client.post(APPLY, data)

        html = _html(response)
        assert response.status_code == 400
        assert message in _field_errors(html, field)
        assert re.search(rf'id="id_{field}"[^>]*aria-invalid="true"', html, re.S)
        assert not Reseller.objects.exists()

    def test_rejected_applicant_sees_the_reason_and_may_apply_again(
        self, alice, alice_client, staff
    ):
        alice_client.post(APPLY, GOOD)
        reseller = Reseller.objects.get(user=alice)
        reseller_reject(reseller_id=reseller.pk, actor=staff, reason="资料不完整")

        page = _html(alice_client.get(APPLY))
        alice_client.post(APPLY, {**GOOD, "contact": "手机 13800000000"})

        assert "资料不完整" in page
        assert 'name="display_name"' in page
        reseller.refresh_from_db()
        assert (reseller.status, reseller.substore_contact) == (
            "applied",
            "手机 13800000000",
        )

    def test_suspended_reseller_sees_why_and_cannot_reapply(self, bob, client, staff):
        reseller_suspend(reseller_id=bob.pk, actor=staff, reason="违规推广")
        client.force_login(bob.user)

        page = client.get(APPLY)
        post = client.post(APPLY, GOOD)

        assert "违规推广" in _html(page)
        assert 'name="display_name"' not in _html(page)
        assert post.status_code == 302
        bob.refresh_from_db()
        assert bob.status == "suspended"

    def test_approved_reseller_is_sent_to_the_dashboard(
        self, alice, alice_client, staff
    ):
        alice_client.post(APPLY, GOOD)
        reseller_approve(reseller_id=Reseller.objects.get(user=alice).pk, actor=staff)

        response = alice_client.get(APPLY)

        assert response.status_code == 302
        assert response["Location"] == "/reseller/"

    def test_apply_page_shows_only_the_users_own_application(self, alice_client, tier):
        ResellerFactory(
            status="rejected", status_reason="别人的拒绝原因", approved_at=None
        )

        html = _html(alice_client.get(APPLY))

        assert "别人的拒绝原因" not in html
        assert "申请状态" not in html

    def test_apply_page_speaks_english(self, alice_client):
        response = alice_client.get(APPLY, HTTP_ACCEPT_LANGUAGE="en")

        html = _html(response)
        assert "Become a reseller" in html
        assert "Display name" in html
        assert "申请" not in html.split("<main", 1)[1]
