"""Settings shared by every mode. Everything that differs between machines comes from the environment."""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(environ.Env().str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEFAULT_SECRET_KEY = "insecure-dev-key-change-me"  # noqa: S105 - refused by production settings
SECRET_KEY = env.str("SECRET_KEY", default=DEFAULT_SECRET_KEY)
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "accounts",
    "subscriptions",
    "imaging",
    "sentiment",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "accounts.tenancy.OrganizationMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
                "accounts.context_processors.organization",
                "subscriptions.context_processors.billing",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout let the web process, the worker and beat share one SQLite file.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
         "transaction_mode": "IMMEDIATE"}
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"

# django-allauth: e-mail login, mandatory verification, throttled logins, TOTP + recovery codes.
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="mandatory")
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_RATE_LIMITS = {
    "login_failed": env.str("RATE_LIMIT_LOGIN_FAILED", default="10/m/ip,5/5m/key"),
    "login": "30/m/ip",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
    "confirm_email": "1/3m/key",
}
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Lumen Insight"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))

# Files: local disk by default, any S3-compatible store when AWS_STORAGE_BUCKET_NAME is set.
if env.str("AWS_STORAGE_BUCKET_NAME", default=""):
    STORAGES = {
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": env.str("AWS_STORAGE_BUCKET_NAME"),
                "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default=None),
                "region_name": env.str("AWS_S3_REGION_NAME", default=None),
                "default_acl": "private",
                "querystring_auth": True,
                "file_overwrite": False,
            },
        },
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
else:
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Lumen Insight <no-reply@localhost>")

CACHES = {"default": env.cache("CACHE_URL", default=f"filecache://{VAR_DIR / 'cache'}")}

# REST API.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api_auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.IsOrganizationMember"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("API_THROTTLE_ANON", default="60/min"),
        "user": env.str("API_THROTTLE_USER", default="1200/min"),
    },
    "EXCEPTION_HANDLER": "accounts.api_errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer",
                                 "rest_framework.renderers.BrowsableAPIRenderer"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Lumen Insight API",
    "DESCRIPTION": "Medical image analysis and financial sentiment analysis. "
                   "Authenticate with `Authorization: Api-Key <key>` or a browser session.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "APPEND_COMPONENTS": {
        "securitySchemes": {"ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "Authorization"}}
    },
    "SECURITY": [{"ApiKeyAuth": []}],
}

# Celery: JSON only, late acks, one message at a time, limits on every task, routes by resource class.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=f"file://{VAR_DIR / 'celery' / 'results'}")
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=600)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=660)
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {
    # Above the longest hard limit, so a running task is never handed to a second worker.
    "visibility_timeout": CELERY_TASK_TIME_LIMIT * 2,
}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "celery" / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS.update({
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),  # kombu's default is ./control, relative to the cwd
        "store_processed": False,
    })
if CELERY_RESULT_BACKEND.startswith("file://"):
    (VAR_DIR / "celery" / "results").mkdir(parents=True, exist_ok=True)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_WORKER_HEARTBEAT_SECONDS = env.int("CELERY_WORKER_HEARTBEAT_SECONDS", default=10)
CELERY_WORKER_STALE_SECONDS = env.int("CELERY_WORKER_STALE_SECONDS", default=45)
CELERY_BEAT_SCHEDULE: dict = {}

# Uploads: Django keeps big request bodies on disk; the apps enforce their own per-file limits.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = 1000

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

INVITATION_TTL_DAYS = env.int("INVITATION_TTL_DAYS", default=7)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- subscriptions ---
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")  # a local fake Stripe in tests; empty = Stripe itself
# Pinned so a dashboard upgrade never changes the shapes our gateway parses (SDK 16's own pin).
STRIPE_API_VERSION = env.str("STRIPE_API_VERSION", default="2026-10-28.endive")
# Dotted path of a stripe HTTPClient subclass; empty = the SDK's default client. Unit tests swap in a fake.
STRIPE_HTTP_CLIENT = env.str("STRIPE_HTTP_CLIENT", default="")
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
# Stripe Price ids per "<plan>:<interval>" (licensed base price) and "<plan>:overage_<meter>" (monthly metered
# price backed by a Billing Meter). A paid plan can be bought only when its price id is set.
STRIPE_PRICE_IDS = {
    f"{_plan}:{_kind}": env.str(f"STRIPE_PRICE_{_plan.upper()}_{_kind.upper()}", default="")
    for _plan in ("starter", "pro", "enterprise")
    for _kind in ("month", "quarter", "year", "overage_images", "overage_texts")
}
# Billing Meter event names (Stripe dashboard: Billing > Meters), one per usage meter.
STRIPE_METER_EVENT_NAMES = {
    "images": env.str("STRIPE_METER_EVENT_IMAGES", default="lumen_images"),
    "texts": env.str("STRIPE_METER_EVENT_TEXTS", default="lumen_texts"),
}
# Days a past_due organisation may still start analyses before new work is blocked (read access stays).
BILLING_PAST_DUE_GRACE_DAYS = env.int("BILLING_PAST_DUE_GRACE_DAYS", default=7)
CELERY_BEAT_SCHEDULE["subscriptions-report-overage"] = {
    "task": "subscriptions.usage_report_overage", "schedule": 600.0, "options": {"queue": "default"},
}
CELERY_BEAT_SCHEDULE["subscriptions-process-pending-events"] = {
    "task": "subscriptions.stripe_events_process_pending", "schedule": 300.0, "options": {"queue": "default"},
}
# --- end subscriptions ---

# --- imaging ---
IMAGING_MODELS_DIR = Path(env.str("IMAGING_MODELS_DIR", default=str(VAR_DIR / "models")))
# Active model per task: "name" or "name:version" of a registered model; empty = the row marked active.
IMAGING_IMAGE_MODEL = env.str("IMAGING_IMAGE_MODEL", default="")
IMAGING_SERIES_MODEL = env.str("IMAGING_SERIES_MODEL", default="")
IMAGING_MAX_FILE_BYTES = env.int("IMAGING_MAX_FILE_BYTES", default=100 * 1024 * 1024)
IMAGING_MAX_PIXELS = env.int("IMAGING_MAX_PIXELS", default=50_000_000)
IMAGING_MAX_FRAMES = env.int("IMAGING_MAX_FRAMES", default=1_000)
IMAGING_MAX_ARCHIVE_BYTES = env.int("IMAGING_MAX_ARCHIVE_BYTES", default=1024 * 1024 * 1024)
IMAGING_MAX_ARCHIVE_MEMBERS = env.int("IMAGING_MAX_ARCHIVE_MEMBERS", default=5_000)
IMAGING_UPLOAD_PARALLEL = env.int("IMAGING_UPLOAD_PARALLEL", default=3)  # files the browser sends at once
IMAGING_BATCH_SIZE = env.int("IMAGING_BATCH_SIZE", default=16)
# Worker threads that decode, encode and write around inference. 0 = automatic: 4 next to a GPU (there decoding and
# encoding are the limit), 2 on CPU, where the model's own threads already use every core (1, 2 and 4 measured
# within noise of each other on 2 cores).
IMAGING_IO_THREADS = env.int("IMAGING_IO_THREADS", default=0)
IMAGING_UPLOAD_THREADS = env.int("IMAGING_UPLOAD_THREADS", default=2)  # web process: decode/de-identify/store files
IMAGING_SERIES_TOP_SLICES = env.int("IMAGING_SERIES_TOP_SLICES", default=3)
IMAGING_SERIES_MIN_SLICES = env.int("IMAGING_SERIES_MIN_SLICES", default=2)
IMAGING_JOB_SOFT_TIME_LIMIT = env.int("IMAGING_JOB_SOFT_TIME_LIMIT", default=540)
IMAGING_JOB_TIME_LIMIT = env.int("IMAGING_JOB_TIME_LIMIT", default=600)  # below the broker visibility timeout
IMAGING_STUCK_JOB_SECONDS = env.int("IMAGING_STUCK_JOB_SECONDS", default=900)
IMAGING_MAX_REQUEUES = env.int("IMAGING_MAX_REQUEUES", default=3)
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The embedded broker polls a folder; the default 1 s poll would dominate a single scan's upload-to-result time.
    CELERY_BROKER_TRANSPORT_OPTIONS.setdefault("polling_interval", 0.05)
CELERY_BEAT_SCHEDULE["imaging-requeue-stuck-jobs"] = {
    "task": "imaging.jobs_requeue_stuck", "schedule": 120.0, "options": {"queue": "default"},
}
# --- end imaging ---

# --- sentiment ---
SENTIMENT_MODELS_DIR = Path(env.str("SENTIMENT_MODELS_DIR", default=str(VAR_DIR / "models")))
# Active model: "name" or "name:version" of a registered model; empty = the row marked active.
SENTIMENT_MODEL = env.str("SENTIMENT_MODEL", default="")
SENTIMENT_DEVICE = env.str("SENTIMENT_DEVICE", default="")  # "" = CUDA when present, else CPU
SENTIMENT_BATCH_SIZE = env.int("SENTIMENT_BATCH_SIZE", default=64)  # texts per model forward pass
SENTIMENT_WRITE_CHUNK = env.int("SENTIMENT_WRITE_CHUNK", default=512)  # texts scored per write-back transaction
SENTIMENT_EXPLAIN_DEFAULT = env.bool("SENTIMENT_EXPLAIN_DEFAULT", default=True)
SENTIMENT_IG_STEPS = env.int("SENTIMENT_IG_STEPS", default=16)
SENTIMENT_API_MAX_BATCH = 1_000
SENTIMENT_MAX_TEXT_CHARS = env.int("SENTIMENT_MAX_TEXT_CHARS", default=20_000)
SENTIMENT_CSV_MAX_BYTES = env.int("SENTIMENT_CSV_MAX_BYTES", default=20 * 1024 * 1024)
SENTIMENT_CSV_MAX_ROWS = env.int("SENTIMENT_CSV_MAX_ROWS", default=50_000)
SENTIMENT_STRONG_NEGATIVE = 0.7  # p(negative) at or above which a document counts as strongly negative
SENTIMENT_FEED_TIMEOUT = env.float("SENTIMENT_FEED_TIMEOUT", default=10.0)
SENTIMENT_FEED_MAX_BYTES = env.int("SENTIMENT_FEED_MAX_BYTES", default=5 * 1024 * 1024)
SENTIMENT_FEED_MAX_ITEMS = env.int("SENTIMENT_FEED_MAX_ITEMS", default=500)
SENTIMENT_FEED_MIN_INTERVAL_MINUTES = env.int("SENTIMENT_FEED_MIN_INTERVAL_MINUTES", default=5)
SENTIMENT_FEED_MAX_BACKOFF_MINUTES = env.int("SENTIMENT_FEED_MAX_BACKOFF_MINUTES", default=24 * 60)
SENTIMENT_WEBHOOK_TIMEOUT = env.float("SENTIMENT_WEBHOOK_TIMEOUT", default=5.0)
SENTIMENT_JOB_SOFT_TIME_LIMIT = env.int("SENTIMENT_JOB_SOFT_TIME_LIMIT", default=540)
SENTIMENT_JOB_TIME_LIMIT = env.int("SENTIMENT_JOB_TIME_LIMIT", default=600)  # below the broker visibility timeout
SENTIMENT_STUCK_BATCH_SECONDS = env.int("SENTIMENT_STUCK_BATCH_SECONDS", default=900)
SENTIMENT_DIGEST_HOUR_UTC = env.int("SENTIMENT_DIGEST_HOUR_UTC", default=7)
CELERY_BEAT_SCHEDULE["sentiment-poll-feeds"] = {
    "task": "sentiment.feeds_poll_due", "schedule": 60.0, "options": {"queue": "default"},
}
CELERY_BEAT_SCHEDULE["sentiment-requeue-stuck-batches"] = {
    "task": "sentiment.batches_requeue_stuck", "schedule": 120.0, "options": {"queue": "default"},
}
CELERY_BEAT_SCHEDULE["sentiment-daily-digest"] = {
    "task": "sentiment.digests_send_due", "schedule": 900.0, "options": {"queue": "default"},
}
# --- end sentiment ---
