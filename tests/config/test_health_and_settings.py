from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_healthz_ok_when_database_and_redis_answer(client):
    response = client.get("/healthz")

    assert (response.status_code, response.content) == (200, b"ok")


@pytest.mark.django_db
def test_healthz_503_when_redis_does_not_answer(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    response = client.get(reverse("healthz"))

    assert response.status_code == 503
    assert b"redis" in response.content


def _check_settings(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "SECRET_KEY",
            "VAULT_KEYS",
            "VAULT_FINGERPRINT_KEY",
            "SANDBOX_PAY_SECRET",
            "DEBUG",
        }
    }
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; from django.conf import settings; settings.INSTALLED_APPS",
        ],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_production_refuses_to_start_with_demo_or_missing_secrets():
    result = _check_settings({"DEBUG": "false", "ALLOWED_HOSTS": "x"})

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
    assert "VAULT_KEYS" in result.stderr


def test_production_starts_with_real_secrets():
    from cryptography.fernet import Fernet

    result = _check_settings(
        {
            "DEBUG": "false",
            "SECRET_KEY": "s3cr3t-" * 8,  # 56 characters, 6 distinct (Django's W009)
            "VAULT_KEYS": Fernet.generate_key().decode(),
            "VAULT_FINGERPRINT_KEY": "f" * 32,
            "SANDBOX_PAY_SECRET": "p" * 32,
        }
    )

    assert result.returncode == 0, result.stderr


def test_env_bool_refuses_anything_but_true_or_false():
    result = _check_settings({"DEBUG": "yes"})

    assert result.returncode != 0
    assert "DEBUG must be 'true' or 'false'" in result.stderr
