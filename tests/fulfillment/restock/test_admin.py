"""The restock admin: a read-only list with the batch and the error; two guarded actions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from fulfillment.models import CardRestock
from fulfillment.services import card_restock_advance, card_restock_check
from tests.factories.accounts import UserFactory
from tests.factories.fulfillment import stock_codes
from tests.fulfillment.restock.conftest import advance_until_done, simulator_card_codes

pytestmark = pytest.mark.django_db

RS = CardRestock.Status
CHANGELIST = reverse("admin:fulfillment_cardrestock_changelist")


def _staff_client(client, *codenames):
    user = UserFactory(is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="fulfillment", codename__in=codenames
        )
    )
    client.force_login(user)
    return client


@pytest.fixture
def viewer(client):
    return _staff_client(client, "view_cardrestock")


@pytest.fixture
def restock_operator(client):
    return _staff_client(client, "view_cardrestock", "change_cardrestock")


@pytest.fixture
def succeeded(card_sku, sim_supplier, supplier_simulator):
    stock_codes(card_sku, 1)
    card_restock_check()
    return advance_until_done(CardRestock.objects.get())


def test_restock_list_shows_the_purchase_and_its_batch_but_no_card(
    viewer, succeeded, supplier_simulator
):
    response = viewer.get(CHANGELIST)

    html = response.content.decode()
    assert response.status_code == 200
    assert succeeded.customer_order_no in html
    assert "YK-VIP-MONTH" in html
    assert "sim" in html
    assert "20.00" in html
    assert "成功" in html
    batch_url = reverse("admin:fulfillment_codebatch_change", args=[succeeded.batch_id])
    assert batch_url in html
    for code in simulator_card_codes(supplier_simulator, succeeded.customer_order_no):
        for piece in code.split("----"):
            assert piece not in html


def test_restock_list_shows_the_error_of_a_refused_restock(
    viewer, card_sku, sim_supplier, supplier_simulator
):
    supplier_simulator.faults(stock={"C-YK-VIP-MONTH": 0})
    card_restock_check()
    card_restock_advance(restock_id=CardRestock.objects.get().pk)

    html = viewer.get(CHANGELIST).content.decode()

    assert "被拒绝" in html
    assert "2003" in html
    assert "out of stock" in html


def test_restock_admin_is_read_only_and_offers_no_action_to_a_viewer(viewer, succeeded):
    change = viewer.get(
        reverse("admin:fulfillment_cardrestock_change", args=[succeeded.pk])
    )
    listing = viewer.get(CHANGELIST)

    assert change.status_code == 200
    assert b'name="_save"' not in change.content
    assert listing.context["action_form"] is None
    assert viewer.get(reverse("admin:fulfillment_cardrestock_add")).status_code == 403


def test_restock_operator_retries_and_closes_a_stopped_restock(
    restock_operator, card_sku, sim_supplier
):
    card_restock_check()
    restock = CardRestock.objects.get()
    CardRestock.objects.filter(pk=restock.pk).update(
        status=RS.UNKNOWN, needs_attention=True, next_poll_at=None
    )
    choices = restock_operator.get(CHANGELIST).context["action_form"].fields["action"]
    assert {"retry_now", "close"} <= {name for name, _label in choices.choices}

    restock_operator.post(
        CHANGELIST,
        {"action": "retry_now", "_selected_action": [restock.pk]},
    )
    restock.refresh_from_db()
    assert restock.needs_attention is False
    assert restock.next_poll_at is not None

    refused = restock_operator.post(
        CHANGELIST,
        {"action": "close", "_selected_action": [restock.pk]},
        follow=True,
    )
    restock.refresh_from_db()
    assert restock.is_open
    assert "只有已停下等待人工处理的补货单可以关闭" in refused.content.decode()

    CardRestock.objects.filter(pk=restock.pk).update(needs_attention=True)
    restock_operator.post(
        CHANGELIST, {"action": "close", "_selected_action": [restock.pk]}
    )
    restock.refresh_from_db()
    assert restock.status == RS.FAILED
