"""Settings for the test suite. Integration tests override the database and broker from the environment."""

from .base import *  # noqa: F401,F403
from .base import VAR_DIR, env

SECRET_KEY = "test-secret-key"  # noqa: S105
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Flow tests run task bodies inline; the integration tier sets it false and uses a real worker.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
CELERY_TASK_EAGER_PROPAGATES = True
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(VAR_DIR / "test-media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
ACCOUNT_RATE_LIMITS = {"login_failed": env.str("RATE_LIMIT_LOGIN_FAILED", default="5/m/ip,5/5m/key")}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
# A code computed just before a 30-second step boundary is still accepted, so TOTP tests cannot flake.
MFA_TOTP_TOLERANCE = 1
