from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.urls import reverse

from tests.factories.accounts import PASSWORD

pytestmark = pytest.mark.django_db


def test_signup_with_email_logs_in_and_creates_user(client):
    response = client.post(
        reverse("account_signup"),
        {
            "email": "new@example.com",
            "password1": "A-long-Passw0rd-2026",
            "password2": "A-long-Passw0rd-2026",
        },
    )

    assert response.status_code == 302
    user = get_user_model().objects.get(email="new@example.com")
    assert client.session["_auth_user_id"] == str(user.pk)


def test_signup_rejects_duplicate_email_with_message(client, alice):
    response = client.post(
        reverse("account_signup"),
        {
            "email": "alice@example.com",
            "password1": "A-long-Passw0rd-2026",
            "password2": "A-long-Passw0rd-2026",
        },
    )

    assert response.status_code == 200
    assert get_user_model().objects.filter(email="alice@example.com").count() == 1
    assert response.context["form"].errors["email"]


def test_login_by_email_works(client, alice):
    response = client.post(
        reverse("account_login"), {"login": "alice@example.com", "password": PASSWORD}
    )

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_login_is_throttled_after_repeated_failures(client, alice):
    for _ in range(5):
        client.post(
            reverse("account_login"),
            {"login": "alice@example.com", "password": "wrong"},
        )

    response = client.post(
        reverse("account_login"), {"login": "alice@example.com", "password": PASSWORD}
    )

    assert "_auth_user_id" not in client.session
    assert response.status_code in (200, 429)


def test_password_reset_sends_email_with_link(client, alice):
    response = client.post(
        reverse("account_reset_password"), {"email": "alice@example.com"}
    )

    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert "/accounts/password/reset/key/" in mail.outbox[0].body
