"""Kaquan settings: the only settings module. Everything comes from the environment.

See .env.example for every variable. Defaults favour development only while DEBUG
is true; with DEBUG off a missing or demo secret is a startup error.
"""

from __future__ import annotations

import decimal as _decimal
from pathlib import Path

import dj_database_url
import dj_email_url
from csp import constants as csp_constants
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from config.lib.env import (
    env_bool,
    env_int,
    env_list,
    env_networks,
    env_secret,
    env_str,
)
from config.lib.prodcheck import secret_key_problem, vault_keys_problem

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Core --------------------------------------------------------------------
DEBUG = env_bool("DEBUG", True)
DEMO_SECRET_KEY = "django-insecure-kaquan-demo-only-never-use-in-production"  # noqa: S105
SECRET_KEY = env_secret("SECRET_KEY") or (DEMO_SECRET_KEY if DEBUG else "")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "config.apps.KaquanAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "import_export",
    "csp",
    "captcha",  # django-simple-captcha: self-hosted image captcha (risk checks)
    "config",
    "accounts",
    "catalog",
    "orders",
    "fulfillment",
    "risk",
    "distribution",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # One layer, static files served above it (config/lib/middleware.py): the CSP;
    # cookies holding NUL dropped; Django's session; the language
    # (config/lib/locale.py); Django's Common, auth and messages (the storage built
    # on first use, config/lib/messages.py); Cache-Control: private. Once the view
    # is known: NUL in a path, query or form a 404/400 (config/lib/nul.py), then
    # ?ref=CODE on a storefront page: the referral cookie and the page without it.
    "config.lib.middleware.SiteMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # request.device_id from a signed cookie (no database, no cache)
    "risk.device.DeviceMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# --- Database ----------------------------------------------------------------
# Persistent connections are mandatory for throughput (docs/performance-notes):
# CONN_MAX_AGE=0 cut a one-query view from ~1,450 to ~190 req/s.
DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=env_int("CONN_MAX_AGE", 600),
        # A connection PostgreSQL dropped (restart, failover, idle timeout) is
        # replaced before a request uses it: Django pings it (`SELECT 1`) before
        # the request's first query. Only after an idle spell, below.
        conn_health_checks=True,
    )
}
# The ping costs every request about 0.1 ms of CPU and a round trip; a connection
# that finished a request less than this many seconds ago skips it (0: every
# request pings, as Django does). Busy workers never pay for it; a connection
# dropped mid-rush fails one request and Django's end-of-request check closes it
# (config/lib/dbhealth.py, docs/DECISIONS.md).
CONN_HEALTH_CHECK_IDLE_SECONDS = env_int("CONN_HEALTH_CHECK_IDLE_SECONDS", 5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USING_POSTGRES = DATABASES["default"]["ENGINE"].endswith("postgresql")
# The planner's price of a random page read. PostgreSQL's default, 4, prices a
# spinning disk; on SSDs or a working set in memory (any shop of this size) 1.1
# is the usual setting, and it decides the plans that matter here: the risk
# engine's database counts over 50,000 orders went from a hash join over every
# order line (15.6 ms) to index look-ups (3.2 ms). Sent in the connection's
# start-up packet (no round trip); PG_RANDOM_PAGE_COST="" keeps the server's.
PG_RANDOM_PAGE_COST = env_str("PG_RANDOM_PAGE_COST", "1.1")
if USING_POSTGRES and PG_RANDOM_PAGE_COST:
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
        f"-c random_page_cost={float(PG_RANDOM_PAGE_COST)}"
    )
# The paid path's hand-written SQL runs as prepared statements on PostgreSQL
# (config/lib/prepared.py). false behind a transaction-pooling proxy (PgBouncer
# in transaction mode), which forgets them between transactions.
DB_PREPARED_STATEMENTS = env_bool("DB_PREPARED_STATEMENTS", True)
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The make-run demo writes from three processes at once (web, worker, beat).
    # WAL lets readers carry on while one process writes. IMMEDIATE takes the
    # write lock at BEGIN, so a second writer waits on the busy timeout instead
    # of failing with "database is locked" when it upgrades a read lock mid-way.
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }

# --- Redis: Celery broker, cache, rate-limit counters ------------------------
REDIS_URL = env_str("REDIS_URL")
CACHES: dict[str, dict[str, object]]
if REDIS_URL:
    CACHES = {
        "default": {
            # Django's, reusing its Redis client (config/lib/cache.py).
            "BACKEND": "config.lib.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "kaquan"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Each process's own copy of what rarely changes (the catalog, rendered page
# fragments), always keyed by the catalog version read from "default" (catalog/cache.py).
CACHES["local"] = {
    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    "LOCATION": "kaquan-local",
    "OPTIONS": {"MAX_ENTRIES": 2000},
}
# How long a storefront page may show a stock state without counting again, and
# how long "sold out" answers checkout before the vault is asked again
# (fulfillment/availability.py, fulfillment/soldout.py).
STOCK_CACHE_SECONDS = env_int("STOCK_CACHE_SECONDS", 2)
SOLD_OUT_FLAG_SECONDS = env_int("SOLD_OUT_FLAG_SECONDS", 2)

# Sessions are read from the cache, written to both (the table stays the truth),
# which saves a query on every signed-in request. Only with a cache all processes
# share: with one LocMemCache per process, a logout in one gunicorn worker would
# leave the session alive in another worker's cache until it expired.
SESSION_ENGINE = (
    "config.lib.sessions"  # Django's cached_db, surviving a cache outage
    if REDIS_URL
    else "django.contrib.sessions.backends.db"
)

# --- Celery ------------------------------------------------------------------
# Tasks always go through the broker to a worker, never inline in a request;
# only the tests force eager mode (tests/conftest.py). Periodic tasks and queue
# routes are in config/celery.py.
# No REDIS_URL (the make-run demo): kombu's filesystem transport, one file per
# message under .run/broker/, so web, worker and beat are separate processes as
# in production, with no server to install. It is a demo broker: a message taken
# by a worker that is then killed (not stopped) is lost.
RUN_DIR = BASE_DIR / ".run"
# The filesystem transport ignores the host; without one kombu warns on each connect.
CELERY_BROKER_URL = REDIS_URL or "filesystem://localhost/"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULE_FILENAME = env_str(
    "CELERY_BEAT_SCHEDULE_FILENAME", str(RUN_DIR / "celerybeat-schedule")
)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 30
CELERY_TASK_TIME_LIMIT = 60
CELERY_TASK_IGNORE_RESULT = True
# Celery's Django fixup closes the database connection before and after every
# task: two new PostgreSQL connections per top-up, which cost 15-70 % of top-up
# throughput (docs/PERFORMANCE.md). With this it reconnects every 1,000 tasks
# (it counts the closes it skips, two per task); config/celery.py still drops,
# after each task, a connection that broke or outlived CONN_MAX_AGE, as Django
# does after each request. The cost: every worker process (or thread) holds a
# connection while idle; count them against PostgreSQL's max_connections.
CELERY_DB_REUSE_MAX = 1000
CELERY_TIMEZONE = "Asia/Shanghai"
# A broker that is down must not hang a request: fail fast, the outbox retries.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
if REDIS_URL:
    # kombu's Redis transport, less a new redis-py client per message (config/lib/broker.py).
    CELERY_BROKER_TRANSPORT = "config.lib.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
    }
else:
    _broker_dir = Path(env_str("CELERY_BROKER_DIR") or RUN_DIR / "broker")
    # Producers and consumers share one queue folder. A consumer claims a message
    # by renaming it into processed/, which is atomic on one filesystem, so two
    # consumers never take the same message (kombu's default, the system temp
    # folder, may be another filesystem, where the move is a copy).
    # scripts/run_demo.py empties processed/ on start.
    _folders = {name: _broker_dir / name for name in ("queue", "processed", "control")}
    for _folder in _folders.values():
        _folder.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_folders["queue"]),
        "data_folder_out": str(_folders["queue"]),
        "processed_folder": str(_folders["processed"]),
        "store_processed": True,
        "control_folder": str(_folders["control"]),
        # Top-ups start within a second of payment (SPEC §5): poll 4 times a second.
        "polling_interval": 0.25,
    }
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
}

# --- Auth and accounts (django-allauth) --------------------------------------
AUTH_USER_MODEL = "accounts.User"
# Django's and allauth's, the signed-in user's row read in plain SQL (accounts/backends.py).
AUTHENTICATION_BACKENDS = [
    "accounts.backends.ModelBackend",
    "accounts.backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Proxies whose X-Forwarded-For is believed (addresses and CIDRs, e.g. the
# load balancer's subnet); empty means REMOTE_ADDR is the client
# (config/lib/clientip.py, used by orders, audit logs and login throttling).
TRUSTED_PROXIES = env_networks("TRUSTED_PROXIES")
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_USER_MODEL_USERNAME_FIELD = "username"
ACCOUNT_EMAIL_VERIFICATION = env_str(
    "ACCOUNT_EMAIL_VERIFICATION", "optional" if DEBUG else "mandatory"
)
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
# allauth's built-in rate limits (login failures, signups, resets) stay on.
# Failed logins count per client address and per account-and-address ("key",
# accounts/adapter.py), never per account alone (nobody can lock a shopper out);
# login_failed_account is a per-account ceiling that never applies where the
# account logged in before (docs/DECISIONS.md).
ACCOUNT_RATE_LIMITS = {
    "login_failed": "10/m/ip,100/h/ip,5/5m/key",
    "login_failed_account": "100/h/key",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
}
# Their counters: Redis in production, counted in each process while Redis is
# down instead of answering 500 (config/lib/ratelimitcache.py).
CACHES["ratelimit"] = {
    "BACKEND": "config.lib.ratelimitcache.FallbackCache",
    "LOCATION": "kaquan-ratelimit",
    "OPTIONS": {"PRIMARY": "default", "RETRY_SECONDS": 5},
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Kaquan"
# Staff must have TOTP to reach /admin/ (config/admin.py); on by default in production.
STAFF_REQUIRE_MFA = env_bool("STAFF_REQUIRE_MFA", not DEBUG)

# --- Internationalisation ----------------------------------------------------
LANGUAGE_CODE = env_str("LANGUAGE_CODE", "zh-hans")
LANGUAGES = [("zh-hans", _("简体中文")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

# --- Static files ------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Email -------------------------------------------------------------------
EMAIL_URL = env_str("EMAIL_URL")
if EMAIL_URL:
    _email = dj_email_url.parse(EMAIL_URL)
    EMAIL_BACKEND = _email["EMAIL_BACKEND"]
    EMAIL_HOST = _email["EMAIL_HOST"]
    EMAIL_PORT = _email["EMAIL_PORT"]
    EMAIL_HOST_USER = _email["EMAIL_HOST_USER"]
    EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"]
    EMAIL_USE_TLS = _email["EMAIL_USE_TLS"]
    EMAIL_USE_SSL = _email["EMAIL_USE_SSL"]
else:
    EMAIL_BACKEND = env_str(
        "EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
    )
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Kaquan <no-reply@kaquan.example>")
EMAIL_TIMEOUT = 10
# Operator alerts (orders/services/operator_alerts.py): these addresses, or else
# every active member of the Operators group with an email; the "waiting on a
# human" digests go out once a day from this local hour on (0-23).
OPERATOR_ALERT_EMAILS = env_list("OPERATOR_ALERT_EMAILS")
OPERATOR_DIGEST_HOUR = env_int("OPERATOR_DIGEST_HOUR", 9)
if not 0 <= OPERATOR_DIGEST_HOUR <= 23:
    raise ImproperlyConfigured("OPERATOR_DIGEST_HOUR must be an hour, 0 to 23")

# --- Code vault --------------------------------------------------------------
# Fernet keys, newest first (docs/VAULT.md). Demo keys exist only for DEBUG.
DEMO_VAULT_KEYS = ["ZGVtby1rYXF1YW4tdmF1bHQta2V5LTAwMDAwMDAwMDA="]
DEMO_VAULT_FINGERPRINT_KEY = "demo-kaquan-fingerprint-key-not-secret"
VAULT_KEYS = [k.strip() for k in env_secret("VAULT_KEYS").split(",") if k.strip()] or (
    DEMO_VAULT_KEYS if DEBUG else []
)
VAULT_FINGERPRINT_KEY = env_secret("VAULT_FINGERPRINT_KEY") or (
    DEMO_VAULT_FINGERPRINT_KEY if DEBUG else ""
)

# --- Orders and payments -----------------------------------------------------
ORDER_PAYMENT_TIMEOUT_MINUTES = env_int("ORDER_PAYMENT_TIMEOUT_MINUTES", 15)
# Unpaid orders one shopper may hold, so nobody can lock the stock by not paying.
ORDER_MAX_UNPAID_PER_USER = env_int("ORDER_MAX_UNPAID_PER_USER", 3)
# Guest orders (orders/guest.py): /orders/lookup/ attempts per client address and
# per order number in ORDER_LOOKUP_WINDOW_SECONDS (counted in CACHES["ratelimit"]).
ORDER_LOOKUP_LIMIT_PER_IP = env_int("ORDER_LOOKUP_LIMIT_PER_IP", 20)
ORDER_LOOKUP_LIMIT_PER_ORDER = env_int("ORDER_LOOKUP_LIMIT_PER_ORDER", 5)
ORDER_LOOKUP_WINDOW_SECONDS = env_int("ORDER_LOOKUP_WINDOW_SECONDS", 900)
COMMISSION_SETTLEMENT_DAYS = env_int("COMMISSION_SETTLEMENT_DAYS", 7)
# How long a referral link's cookie credits the visitor's orders to its reseller
# (distribution/attribution.py).
RESELLER_ATTRIBUTION_DAYS = env_int("RESELLER_ATTRIBUTION_DAYS", 30)
if RESELLER_ATTRIBUTION_DAYS < 1:
    raise ImproperlyConfigured("RESELLER_ATTRIBUTION_DAYS must be at least 1")
# The smallest withdrawal a reseller may request (CNY; distribution/services/payouts.py).
try:
    PAYOUT_MINIMUM = _decimal.Decimal(env_str("PAYOUT_MINIMUM", "100.00"))
except _decimal.InvalidOperation:
    PAYOUT_MINIMUM = _decimal.Decimal("NaN")
if not PAYOUT_MINIMUM.is_finite() or PAYOUT_MINIMUM <= 0:
    raise ImproperlyConfigured("PAYOUT_MINIMUM must be a positive amount, e.g. 100.00")
# Partner API (distribution/api/): requests per key ("N/s|m|h|d"), and the first
# wait before a failed webhook is sent again (doubling, at most an hour, for a day).
PARTNER_API_RATE_LIMIT = env_str("PARTNER_API_RATE_LIMIT", "600/m")
WEBHOOK_RETRY_BASE_SECONDS = env_int("WEBHOOK_RETRY_BASE_SECONDS", 30)
DEMO_SANDBOX_PAY_SECRET = "demo-sandbox-pay-secret"  # noqa: S105
SANDBOX_PAY_SECRET = env_secret("SANDBOX_PAY_SECRET") or (
    DEMO_SANDBOX_PAY_SECRET if DEBUG else ""
)
PAYMENT_SANDBOX_ENABLED = env_bool("PAYMENT_SANDBOX_ENABLED", True)
# Where gateways reach us; empty: the host of the request that started the payment.
PAYMENT_NOTIFY_BASE_URL = env_str("PAYMENT_NOTIFY_BASE_URL").rstrip("/")
# Rejected gateway notifies (bad signature, unknown order...) a source address may
# send a minute; beyond, its notifies get 429 until the minute is over (0: no limit).
# Accepted notifies never count: a gateway sends every paid order's from a few hosts.
PAYMENT_NOTIFY_RATE_LIMIT = env_int("PAYMENT_NOTIFY_RATE_LIMIT", 60)
# Alipay (orders/gateways/alipay.py): on once its app id is set (or the flag says
# so); then every value below is required. Keys as PEM or Alipay's bare base64.
ALIPAY_APP_ID = env_str("ALIPAY_APP_ID")
PAYMENT_ALIPAY_ENABLED = env_bool("PAYMENT_ALIPAY_ENABLED", bool(ALIPAY_APP_ID))
ALIPAY_SELLER_ID = env_str("ALIPAY_SELLER_ID")  # the merchant's PID, 2088…
ALIPAY_APP_PRIVATE_KEY = env_secret("ALIPAY_APP_PRIVATE_KEY")
ALIPAY_PUBLIC_KEY = env_secret("ALIPAY_PUBLIC_KEY")  # Alipay's, verifies its replies
ALIPAY_GATEWAY_URL = env_str(
    "ALIPAY_GATEWAY_URL", "https://openapi.alipay.com/gateway.do"
)
# WeChat Pay API v3 (orders/gateways/wechat.py), platform public key mode: on once
# its merchant id is set (or the flag says so); then every value is required.
WECHAT_PAY_MCHID = env_str("WECHAT_PAY_MCHID")
PAYMENT_WECHAT_ENABLED = env_bool("PAYMENT_WECHAT_ENABLED", bool(WECHAT_PAY_MCHID))
WECHAT_PAY_APPID = env_str("WECHAT_PAY_APPID")
WECHAT_PAY_CERT_SERIAL_NO = env_str("WECHAT_PAY_CERT_SERIAL_NO")
WECHAT_PAY_PRIVATE_KEY = env_secret("WECHAT_PAY_PRIVATE_KEY")
WECHAT_PAY_APIV3_KEY = env_secret("WECHAT_PAY_APIV3_KEY")  # 32 characters
WECHAT_PAY_PUBLIC_KEY = env_secret("WECHAT_PAY_PUBLIC_KEY")
WECHAT_PAY_PUBLIC_KEY_ID = env_str("WECHAT_PAY_PUBLIC_KEY_ID")
WECHAT_PAY_API_URL = env_str("WECHAT_PAY_API_URL", "https://api.mch.weixin.qq.com")
# A device that solved the checkout captcha is not asked again for this long
# (risk/checkout.py; remembered in the cache by device id).
RISK_CAPTCHA_PASS_MINUTES = env_int("RISK_CAPTCHA_PASS_MINUTES", 30)
# Where the risk engine keeps its sliding-window counters (risk/counters.py):
# REDIS_URL by default; set it empty to count in the database only.
RISK_COUNTERS_REDIS_URL = env_str("RISK_COUNTERS_REDIS_URL", REDIS_URL or "")
# The image captcha (django-simple-captcha): big enough to read on a phone.
CAPTCHA_IMAGE_SIZE = (200, 60)
CAPTCHA_FONT_SIZE = 40

# --- Outbound HTTP (config/lib/http.py) --------------------------------------
# Private and loopback targets are refused unless allowed: the bundled
# simulators on loopback need them in development and tests.
HTTP_ALLOW_PRIVATE_ADDRESSES = env_bool("HTTP_ALLOW_PRIVATE_ADDRESSES", DEBUG)
HTTP_TIMEOUT_SECONDS = env_int("HTTP_TIMEOUT_SECONDS", 10)

# --- Top-ups and suppliers (fulfillment/services/topups.py) ------------------
# Where suppliers send their callbacks; empty: SITE_URL.
SUPPLIER_CALLBACK_BASE_URL = env_str("SUPPLIER_CALLBACK_BASE_URL").rstrip("/")
# How long a worker holds a top-up while it talks to the supplier. A worker that
# dies loses its lease after this and the beat sweep hands the top-up on.
TOPUP_LEASE_SECONDS = env_int("TOPUP_LEASE_SECONDS", 60)
# After an unanswered placement, how long an "order not found" may still mean
# "not visible yet" (then placing again under the same number is safe).
TOPUP_PLACEMENT_GRACE_SECONDS = env_int("TOPUP_PLACEMENT_GRACE_SECONDS", 15)
# A top-up still open this long after payment is flagged for an operator.
TOPUP_DEADLINE_MINUTES = env_int("TOPUP_DEADLINE_MINUTES", 30)
# Supplier card restock (自动补货, fulfillment/services/restock.py): codes per
# purchase (0: twice the SKU's low-stock threshold), its cap, tries before an
# operator looks, and how long a refusing mapping rests.
RESTOCK_BATCH_SIZE = env_int("RESTOCK_BATCH_SIZE", 0)
RESTOCK_MAX_PER_ORDER = env_int("RESTOCK_MAX_PER_ORDER", 50)
RESTOCK_MAX_TRIES = env_int("RESTOCK_MAX_TRIES", 10)
RESTOCK_RETRY_MINUTES = env_int("RESTOCK_RETRY_MINUTES", 30)

# --- Security ----------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if not DEBUG else None
# Behind the proxy (SECURE_PROXY_SSL_HEADER): plain HTTP is redirected to HTTPS,
# except the load balancer's plain-HTTP probe of /healthz.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
# Joining the browsers' preload list is the domain owner's decision, hard to undo:
# off unless SECURE_HSTS_PRELOAD=true; while off, check --deploy's reminder
# to turn it on (security.W021) is silenced.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The demo's SQLite cannot build the two "NULLS NOT DISTINCT" unique
    # constraints (commission rules, operator alerts); PostgreSQL, the product's
    # database, enforces them.
    SILENCED_SYSTEM_CHECKS.append("models.W047")
# Content Security Policy (django-csp 4; the admin's additions and why are in
# config/lib/headers.py). No inline scripts: page behaviour is in static/js.
# style-src-attr: platform brand colours are data, set as a CSS variable in a
# style attribute (catalog, checkout); <style> blocks stay forbidden.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp_constants.SELF],
        "script-src": [csp_constants.SELF],
        "style-src": [csp_constants.SELF],
        "style-src-attr": [csp_constants.UNSAFE_INLINE],
        # data: for QR codes rendered inline (allauth's TOTP setup).
        "img-src": [csp_constants.SELF, "data:"],
        "connect-src": [csp_constants.SELF],
        "object-src": [csp_constants.NONE],
        "base-uri": [csp_constants.SELF],
        "frame-ancestors": [csp_constants.NONE],
        # No form-action: checkout redirects to the gateway's own site.
    },
}
# Exports escape formula-like cells in config/lib/exports.py (every import-export
# admin uses its SafeExportMixin). import-export's own switch stays off: it strips
# a leading "=" only and turns every XLSX cell, numbers included, into text.
IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT = False

# --- Logging -----------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    "filters": {"drop_conflicts": {"()": "config.lib.logs.DropConflicts"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # A sold-out answer is not worth a log line per shopper in a rush.
        "django.request": {"filters": ["drop_conflicts"]},
    },
}

# --- Production guard --------------------------------------------------------
if not DEBUG:
    _problems = []
    if not SECRET_KEY or SECRET_KEY == DEMO_SECRET_KEY:
        _problems.append("SECRET_KEY")
    if not VAULT_KEYS or set(VAULT_KEYS) & set(DEMO_VAULT_KEYS):
        _problems.append("VAULT_KEYS")
    if not VAULT_FINGERPRINT_KEY or VAULT_FINGERPRINT_KEY == DEMO_VAULT_FINGERPRINT_KEY:
        _problems.append("VAULT_FINGERPRINT_KEY")
    if PAYMENT_SANDBOX_ENABLED and (
        not SANDBOX_PAY_SECRET or SANDBOX_PAY_SECRET == DEMO_SANDBOX_PAY_SECRET
    ):
        _problems.append("SANDBOX_PAY_SECRET")
    # Present but weak or malformed: refused now, not at first use (config/lib/prodcheck.py).
    _messages = [
        problem
        for problem in (
            None if "SECRET_KEY" in _problems else secret_key_problem(SECRET_KEY),
            None if "VAULT_KEYS" in _problems else vault_keys_problem(VAULT_KEYS),
        )
        if problem
    ]
    if _problems:
        _messages.insert(
            0,
            "DEBUG is off and these settings are missing or still the demo values: "
            + ", ".join(_problems),
        )
    if _messages:
        raise ImproperlyConfigured("; ".join(_messages))

# --- Payment gateways guard (every mode) -------------------------------------
# An enabled gateway runs only with all of its settings: an empty sandbox secret
# would let anyone sign a "paid" notify, a half-configured real one fails late.
_gateway_missing = [
    name
    for enabled, names in (
        (PAYMENT_SANDBOX_ENABLED, ["SANDBOX_PAY_SECRET"]),
        (
            PAYMENT_ALIPAY_ENABLED,
            [
                "ALIPAY_APP_ID",
                "ALIPAY_SELLER_ID",
                "ALIPAY_APP_PRIVATE_KEY",
                "ALIPAY_PUBLIC_KEY",
                "ALIPAY_GATEWAY_URL",
            ],
        ),
        (
            PAYMENT_WECHAT_ENABLED,
            [
                "WECHAT_PAY_MCHID",
                "WECHAT_PAY_APPID",
                "WECHAT_PAY_CERT_SERIAL_NO",
                "WECHAT_PAY_PRIVATE_KEY",
                "WECHAT_PAY_APIV3_KEY",
                "WECHAT_PAY_PUBLIC_KEY",
                "WECHAT_PAY_PUBLIC_KEY_ID",
                "WECHAT_PAY_API_URL",
            ],
        ),
    )
    if enabled
    for name in names
    if not globals()[name]
]
if _gateway_missing:
    raise ImproperlyConfigured(
        "enabled payment gateways are missing these settings: "
        + ", ".join(_gateway_missing)
    )
if PAYMENT_WECHAT_ENABLED and len(WECHAT_PAY_APIV3_KEY.encode()) != 32:
    raise ImproperlyConfigured("WECHAT_PAY_APIV3_KEY must be 32 bytes long")
