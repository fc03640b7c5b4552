"""Scaled mode. Refuses to start with settings that would be unsafe on the internet."""

from .base import *  # noqa: F401,F403
from .base import SECRET_KEY, env
from .safety import check_production_safety

DEBUG = env.bool("DEBUG", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
STORAGES["staticfiles"] = {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}  # noqa: F405


check_production_safety(debug=DEBUG, secret_key=SECRET_KEY, session_secure=SESSION_COOKIE_SECURE,
                        csrf_secure=CSRF_COOKIE_SECURE)
