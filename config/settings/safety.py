"""Checks that production settings are safe to face the internet."""

from django.core.exceptions import ImproperlyConfigured

from .base import DEFAULT_SECRET_KEY


def check_production_safety(*, debug: bool, secret_key: str, session_secure: bool, csrf_secure: bool) -> None:
    """Raise ImproperlyConfigured naming every unsafe setting at once."""
    problems = []
    if debug:
        problems.append("DEBUG must be off")
    if not secret_key or secret_key == DEFAULT_SECRET_KEY or len(secret_key) < 32:
        problems.append("SECRET_KEY must be set to a random value of at least 32 characters")
    if not session_secure or not csrf_secure:
        problems.append("SESSION_COOKIE_SECURE and CSRF_COOKIE_SECURE must be on")
    if problems:
        raise ImproperlyConfigured("Refusing to start in production: " + "; ".join(problems) + ".")
