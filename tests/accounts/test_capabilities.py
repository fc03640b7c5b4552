import pytest
from django.core.exceptions import ImproperlyConfigured

from accounts.capabilities import Capability, Role, api_key_has, role_has
from config.settings.safety import check_production_safety


@pytest.mark.parametrize(("role", "capability", "allowed"), [
    (Role.OWNER, Capability.BILLING_MANAGE, True),
    (Role.ADMIN, Capability.MEMBERS_MANAGE, True),
    (Role.CLINICIAN, Capability.IMAGING_ANALYZE, True),
    (Role.CLINICIAN, Capability.SENTIMENT_INGEST, False),
    (Role.ANALYST, Capability.SENTIMENT_INGEST, True),
    (Role.ANALYST, Capability.IMAGING_ANALYZE, False),
    (Role.BILLING, Capability.BILLING_MANAGE, True),
    (Role.BILLING, Capability.IMAGING_VIEW, False),
    (Role.VIEWER, Capability.IMAGING_VIEW, True),
    (Role.VIEWER, Capability.MEMBERS_MANAGE, False),
    (None, Capability.ORG_VIEW, False),
])
def test_role_capabilities(role, capability, allowed):
    assert role_has(role, capability) is allowed


def test_api_keys_never_administer_the_organisation():
    for scope in ("read", "write"):
        assert not api_key_has(scope, Capability.MEMBERS_MANAGE)
        assert not api_key_has(scope, Capability.API_KEYS_MANAGE)
    assert api_key_has("write", Capability.IMAGING_ANALYZE) and not api_key_has("read", Capability.IMAGING_ANALYZE)


def test_production_refuses_unsafe_settings():
    with pytest.raises(ImproperlyConfigured) as err:
        check_production_safety(debug=True, secret_key="insecure-dev-key-change-me", session_secure=False,
                                csrf_secure=True)
    message = str(err.value)
    assert "DEBUG" in message and "SECRET_KEY" in message and "SESSION_COOKIE_SECURE" in message
    check_production_safety(debug=False, secret_key="x" * 40, session_secure=True, csrf_secure=True)


def test_production_settings_refuse_to_start_with_defaults():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.production"
    proc = subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0
    assert "Refusing to start in production" in proc.stderr and "SECRET_KEY" in proc.stderr
