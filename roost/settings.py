"""Roost settings, read from the environment (see README.md, "Configuration")."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from .env import envbool, envint, envlist, envsecret, envstr

# Django's generic classes take type arguments at run time too (ModelAdmin[Device]), as typed.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

ROOST_ENV = envstr("ROOST_ENV", "development").strip().lower()
if ROOST_ENV not in {"development", "production", "test"}:
    raise ImproperlyConfigured(
        f"ROOST_ENV={ROOST_ENV!r} is not one of development, production, test"
    )
PRODUCTION = ROOST_ENV == "production"

ROOST_DATA_DIR = Path(envstr("ROOST_DATA_DIR", str(BASE_DIR / "var"))).resolve()
ROOST_WEB_PORT = envint("ROOST_WEB_PORT", 8000, minimum=1, maximum=65535)
ROOST_BROKER_PORT = envint("ROOST_BROKER_PORT", 8883, minimum=1, maximum=65535)
ROOST_BROKER_HOSTNAMES = envlist("ROOST_BROKER_HOSTNAMES", "localhost,127.0.0.1")
ROOST_BROKER_BIND = envstr("ROOST_BROKER_BIND", "0.0.0.0" if envstr("ROOST_ENV") == "production" else "127.0.0.1")  # noqa: S104
ROOST_BROKER_BRIDGE_PORT = envint("ROOST_BROKER_BRIDGE_PORT", 8884, minimum=0, maximum=65535)
ROOST_BROKER_PLAIN_PORT = envint("ROOST_BROKER_PLAIN_PORT", 0, minimum=0, maximum=65535)
ROOST_BROKER_WSS_PORT = envint("ROOST_BROKER_WSS_PORT", 0, minimum=0, maximum=65535)
# TLS without client certificates for a tenant's back ends, authenticated by API key (0: off).
ROOST_BROKER_SERVICE_PORT = envint("ROOST_BROKER_SERVICE_PORT", 0, minimum=0, maximum=65535)
ROOST_BROKER_METRICS_PORT = envint("ROOST_BROKER_METRICS_PORT", 9883, minimum=0, maximum=65535)
ROOST_BROKER_MAX_QUEUED = envint("ROOST_BROKER_MAX_QUEUED", 1000, minimum=0)
# A session's queue in bytes (whole PUBLISH packets), and what happens to a connected client
# that cannot keep up: its messages are dropped (counted), or with "disconnect" so is it (0x97).
ROOST_BROKER_MAX_QUEUED_BYTES = envint("ROOST_BROKER_MAX_QUEUED_BYTES", 64 * 1024 * 1024, minimum=0)
ROOST_BROKER_SLOW_CLIENT = envstr("ROOST_BROKER_SLOW_CLIENT", "drop").strip().lower()
if ROOST_BROKER_SLOW_CLIENT not in {"drop", "disconnect"}:
    raise ImproperlyConfigured(f"ROOST_BROKER_SLOW_CLIENT={ROOST_BROKER_SLOW_CLIENT!r} is not drop or disconnect")
ROOST_BROKER_FLUSH_INTERVAL = float(envint("ROOST_BROKER_FLUSH_MS", 500, minimum=10, maximum=60000)) / 1000
ROOST_BROKER_POLL_INTERVAL = float(envint("ROOST_BROKER_POLL_MS", 200, minimum=10, maximum=60000)) / 1000
# Flapping detection: more than FLAP_MAX connects of one device (or service client id) within
# FLAP_WINDOW seconds refuse it for FLAP_BAN seconds (CONNACK 0x9F); FLAP_MAX=0 turns it off.
ROOST_BROKER_FLAP_MAX = envint("ROOST_BROKER_FLAP_MAX", 20, minimum=0)
ROOST_BROKER_FLAP_WINDOW = envint("ROOST_BROKER_FLAP_WINDOW", 60, minimum=1)
ROOST_BROKER_FLAP_BAN = envint("ROOST_BROKER_FLAP_BAN", 60, minimum=1)
ROOST_PUBLIC_URL = envstr("ROOST_PUBLIC_URL", f"http://localhost:{ROOST_WEB_PORT}").rstrip("/")
if not ROOST_PUBLIC_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"ROOST_PUBLIC_URL={ROOST_PUBLIC_URL!r} must start with http:// or https://")

DEBUG = envbool("ROOST_DEBUG", not PRODUCTION)


def _secret_key() -> str:
    configured = envsecret("ROOST_SECRET_KEY")
    if configured:
        return configured
    if PRODUCTION:
        return ""  # refused below with a message naming the setting
    # Local use: a random key kept beside the data, never a literal in the repository.
    ROOST_DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = ROOST_DATA_DIR / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = envlist("ROOST_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("ROOST_CSRF_TRUSTED_ORIGINS", ROOST_PUBLIC_URL)

if PRODUCTION:
    if DEBUG:
        raise ImproperlyConfigured("ROOST_DEBUG must be off when ROOST_ENV=production")
    if not SECRET_KEY:
        raise ImproperlyConfigured(
            "ROOST_SECRET_KEY (or ROOST_SECRET_KEY_FILE) must be set when ROOST_ENV=production"
        )
    if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5 or SECRET_KEY.startswith("django-insecure"):
        raise ImproperlyConfigured(
            "ROOST_SECRET_KEY is too weak for ROOST_ENV=production (use 50+ random characters)"
        )
    if "*" in ALLOWED_HOSTS:
        raise ImproperlyConfigured("ROOST_ALLOWED_HOSTS must not contain '*' when ROOST_ENV=production")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "channels",
    "roost",
    "devices",
    "pki",
    "acl",
    "broker.integration",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "roost.api.middleware.ApiOptionalSlashMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "roost.urls"
WSGI_APPLICATION = None
ASGI_APPLICATION = "roost.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = envstr("DATABASE_URL")
if DATABASE_URL:
    try:
        _db = dj_database_url.parse(DATABASE_URL, conn_max_age=0)
    except Exception as exc:  # dj-database-url raises several types for bad URLs
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from exc
    if _db["ENGINE"] not in {"django.db.backends.postgresql", "django.db.backends.sqlite3"}:
        raise ImproperlyConfigured("DATABASE_URL must be a postgres:// or sqlite:// URL")
else:
    ROOST_DATA_DIR.mkdir(parents=True, exist_ok=True)
    _db = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(ROOST_DATA_DIR / "roost.sqlite3"),
    }
_db_password = envsecret("ROOST_DATABASE_PASSWORD")
if _db_password:
    _db["PASSWORD"] = _db_password
if _db["ENGINE"] == "django.db.backends.postgresql":
    # A pool per process: under ASGI every request runs on a thread of its own, so persistent
    # per-thread connections (CONN_MAX_AGE) pile up until PostgreSQL refuses clients.
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": envint("ROOST_DATABASE_POOL_SIZE", 10, minimum=1, maximum=1000),
        "timeout": 10,
    }
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web service, the worker and the broker read while one of them writes.
    _db.setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = envstr("REDIS_URL")

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Celery: Redis when configured, otherwise kombu's filesystem transport under the data dir,
# so the worker and beat run on a laptop with no server at all.
CELERY_QUEUE_DIR = ROOST_DATA_DIR / "celery"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
else:
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_QUEUE_DIR / "queue"),
        "data_folder_out": str(CELERY_QUEUE_DIR / "queue"),
        "processed_folder": str(CELERY_QUEUE_DIR / "processed"),
        # Exchange tables (celery control, pidbox); kombu's default is "control" in the
        # working directory, which left a folder in the checkout after every test run.
        "control_folder": str(CELERY_QUEUE_DIR / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BEAT_SCHEDULE_FILENAME = str(ROOST_DATA_DIR / "celerybeat-schedule")
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "devices-housekeeping": {"task": "devices.tasks.prune_change_events", "schedule": 3600.0},
}

# --- portal sign-in ---
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "frontend:home"
LOGOUT_REDIRECT_URL = "login"
# Failed sign-ins allowed per user name and client address per minute; more are refused
# without checking the password until the minute has passed (counted in CACHES).
ROOST_LOGIN_ATTEMPTS = envint("ROOST_LOGIN_ATTEMPTS", 5, minimum=1, maximum=1000)
# Password-reset mail: printed to the console unless an SMTP server is configured.
EMAIL_HOST = envstr("ROOST_EMAIL_HOST")
EMAIL_BACKEND = ("django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST
                 else "django.core.mail.backends.console.EmailBackend")
EMAIL_PORT = envint("ROOST_EMAIL_PORT", 587, minimum=1, maximum=65535)
EMAIL_HOST_USER = envstr("ROOST_EMAIL_USER")
EMAIL_HOST_PASSWORD = envsecret("ROOST_EMAIL_PASSWORD")
EMAIL_USE_TLS = envbool("ROOST_EMAIL_TLS", True)
DEFAULT_FROM_EMAIL = envstr("ROOST_EMAIL_FROM", "roost@localhost")
# --- end portal sign-in ---

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = ROOST_DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every request otherwise
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# Enrollment requests per client address (REQUESTS/PERIOD, PERIOD one of s, min, h, day),
# counted per web process. A token is a 256-bit secret, so this guards the CPU (CSR
# checks, signing) more than the tokens.
ROOST_ENROLL_RATE = envstr("ROOST_ENROLL_RATE", "30/min").strip()
if not re.fullmatch(r"[1-9]\d*/(s|sec|m|min|h|hour|d|day)", ROOST_ENROLL_RATE):
    raise ImproperlyConfigured(f"ROOST_ENROLL_RATE={ROOST_ENROLL_RATE!r}: expected REQUESTS/PERIOD such as 30/min")
# Reverse proxies in front of the web server: the client address is then taken from
# X-Forwarded-For, this many hops from the end. 0 trusts no such header.
ROOST_NUM_PROXIES = envint("ROOST_NUM_PROXIES", 0, minimum=0, maximum=10)

# The REST API: requests per key (or user) and period, and the largest body most endpoints take.
ROOST_API_RATE = envstr("ROOST_API_RATE", "1200/min").strip()
if not re.fullmatch(r"[1-9]\d*/(s|sec|m|min|h|hour|d|day)", ROOST_API_RATE):
    raise ImproperlyConfigured(f"ROOST_API_RATE={ROOST_API_RATE!r}: expected REQUESTS/PERIOD such as 1200/min")
ROOST_API_MAX_BODY = envint("ROOST_API_MAX_BODY", 1024 * 1024, minimum=1024)
# Bulk imports (POST devices/import, `roost device import`): rows per file, the largest upload,
# and how long finished jobs are kept (their bundles hold private keys; the worker prunes them).
ROOST_IMPORT_MAX_ROWS = envint("ROOST_IMPORT_MAX_ROWS", 100_000, minimum=1, maximum=1_000_000)
ROOST_IMPORT_MAX_BODY = envint("ROOST_IMPORT_MAX_BODY", 64 * 1024 * 1024, minimum=1024)
ROOST_IMPORT_KEEP_DAYS = envint("ROOST_IMPORT_KEEP_DAYS", 7, minimum=1, maximum=365)
CELERY_BEAT_SCHEDULE["devices-prune-import-jobs"] = {"task": "devices.tasks.prune_import_jobs", "schedule": 3600.0}

# The dashboard's MQTT over WebSocket endpoint (/mqtt, docs/dashboard.md), per signed-in user:
# open connections, PUBLISH packets per second over all of them, and the largest MQTT packet
# (bytes) a browser may send. Counted in the cache below (Redis when set, else per process).
ROOST_MQTT_WS_MAX_CONNECTIONS = envint("ROOST_MQTT_WS_MAX_CONNECTIONS", 10, minimum=1, maximum=10_000)
ROOST_MQTT_WS_MAX_RATE = envint("ROOST_MQTT_WS_MAX_RATE", 100, minimum=1, maximum=1_000_000)
ROOST_MQTT_WS_MAX_PACKET = envint("ROOST_MQTT_WS_MAX_PACKET", 256 * 1024, minimum=1024, maximum=268_435_460)

# Throttle counters (and other shared counters) live in Redis when there is one, so that
# limits hold across web processes; otherwise in each process's memory.
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "KEY_PREFIX": "roost"}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First, so that a request without credentials gets 401 with WWW-Authenticate: Bearer.
        "roost.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "roost.api.schema.ApiAutoSchema",
    # JSON bodies only (an endpoint that reads CSV or files sets its own parser_classes).
    "DEFAULT_PARSER_CLASSES": ["roost.api.parsers.ApiJSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_PAGINATION_CLASS": "roost.api.pagination.KeysetPagination",
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "roost.api.filters.StrictOrderingFilter",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["roost.api.throttling.ApiRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"enroll": ROOST_ENROLL_RATE, "api": ROOST_API_RATE},
    "EXCEPTION_HANDLER": "roost.api.errors.exception_handler",
    "NUM_PROXIES": ROOST_NUM_PROXIES,
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Roost API",
    "DESCRIPTION": (
        "Provision and run a fleet: tenants, devices, groups, certificates, enrollment tokens, "
        "topic ACLs, retained state, bulk imports, API keys and the audit trail. Authenticate "
        "with `Authorization: Bearer <API key>`; tenant resources live under "
        "`/api/v1/tenants/{tenant}/`. Every 4xx has the same body: `code`, `message`, `field`, `errors`."
    ),
    "VERSION": "1",
    "ENUM_NAME_OVERRIDES": {
        "RevocationReasonEnum": "pki.models.RevocationReason",
        "AclActionEnum": "acl.models.Action",
        "AclEffectEnum": "acl.models.Effect",
        # viewer/operator/admin: the roles of ACL rule subjects and of API keys alike.
        "ScopedRoleEnum": "acl.models.RuleRole",
        "MembershipRoleEnum": "devices.models.Role",
        "ExplainActionEnum": ["publish", "subscribe", "will", "deliver"],
    },
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "roost.api.schema.add_error_responses",
        "roost.api.schema.add_links",
    ],
    # No request to validator.swagger.io: the docs work offline and the schema stays here.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}

LOG_LEVEL = envstr("ROOST_LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "daphne": {"level": "WARNING"},
    },
}

# --- PKI ---
# CA private keys are encrypted with this passphrase. Without it, a random one is generated into
# ROOST_DATA_DIR/pki/passphrase (mode 0600) for local use; production must supply it (or _FILE).
ROOST_PKI_PASSPHRASE = envsecret("ROOST_PKI_PASSPHRASE")
if PRODUCTION and not ROOST_PKI_PASSPHRASE:
    raise ImproperlyConfigured(
        "ROOST_PKI_PASSPHRASE (or ROOST_PKI_PASSPHRASE_FILE) must be set when ROOST_ENV=production"
    )
if PRODUCTION and len(ROOST_PKI_PASSPHRASE) < 16:
    raise ImproperlyConfigured("ROOST_PKI_PASSPHRASE must be at least 16 characters when ROOST_ENV=production")
ROOST_PKI_DEVICE_CERT_DAYS = envint("ROOST_PKI_DEVICE_CERT_DAYS", 365, minimum=1, maximum=3650)
ROOST_PKI_CRL_DAYS = envint("ROOST_PKI_CRL_DAYS", 7, minimum=1, maximum=90)
# A certificate and key of your own for the broker's TLS listener (both or neither); otherwise
# the platform root issues one for ROOST_BROKER_HOSTNAMES and renews it.
ROOST_BROKER_TLS_CERT = envstr("ROOST_BROKER_TLS_CERT")
ROOST_BROKER_TLS_KEY = envstr("ROOST_BROKER_TLS_KEY")
if bool(ROOST_BROKER_TLS_CERT) != bool(ROOST_BROKER_TLS_KEY):
    raise ImproperlyConfigured("Set both ROOST_BROKER_TLS_CERT and ROOST_BROKER_TLS_KEY, or neither")
CELERY_BEAT_SCHEDULE.update({
    "pki-refresh-crls": {"task": "pki.tasks.refresh_crls", "schedule": 3600.0},
    "pki-mark-expired-certificates": {"task": "pki.tasks.mark_expired_certificates", "schedule": 3600.0},
    "pki-rotate-expiring-issuing-cas": {"task": "pki.tasks.rotate_expiring_issuing_cas", "schedule": 86400.0},
    "pki-renew-broker-certificate": {"task": "pki.tasks.renew_broker_server_certificate", "schedule": 86400.0},
})
# --- end PKI ---
