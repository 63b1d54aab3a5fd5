"""Browser tests: Playwright's sync API driving Debian's Chromium against the live server."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connections

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SHOTS = Path(django_settings.BASE_DIR) / "artifacts" / "e2e"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def browser():
    # Playwright's sync API runs an event loop in this thread; the ORM calls the test
    # makes between browser steps are synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        # ORM calls made while Playwright's loop runs get a connection of their own
        # (asgiref's context-local); close it so the test database can be dropped.
        connections.close_all()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


# Where the sandbox's pay page sends a shopper back: their order, marked so that
# the page asks the gateway (orders/services/payment_return.py).
BACK_FROM_SANDBOX = re.compile(r"/orders/KQ[0-9A-Z]+/\?paying=sandbox$")
