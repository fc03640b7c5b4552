"""Fixtures shared by every tier: two organisations (tenant tests always have a second one), members, clients."""

from __future__ import annotations

import os

import pytest

from accounts.capabilities import Role


def pytest_collection_modifyitems(config, items):
    """Integration and browser tiers need services; locally they skip when absent, under CI=true they must run."""
    for item in items:
        if "integration" in item.keywords or "e2e" in item.keywords:
            item.add_marker(pytest.mark.django_db(transaction=True))


def _django_active(request) -> bool:
    """Pure-Python tests (the ml packages) also run with `-p no:django`; the Django fixtures step aside then."""
    return request.config.pluginmanager.hasplugin("django")


@pytest.fixture(autouse=True)
def _scopes_disabled_in_test_body(request):
    """Test code reads freely; requests made through the test client still run inside the middleware's scope."""
    if "no_scopes_disabled" in request.keywords or not _django_active(request):
        yield
        return
    from django_scopes import scopes_disabled

    with scopes_disabled():
        yield


@pytest.fixture(autouse=True)
def _fresh_cache(request):
    """Rate-limit counters live in the cache; one test's sign-ins must not throttle the next test's."""
    if _django_active(request):
        from django.core.cache import cache

        cache.clear()
    yield


@pytest.fixture(autouse=True)
def _media_root(request, tmp_path):
    if _django_active(request):
        request.getfixturevalue("settings").MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def org(db):
    from tests.accounts.factories import OrganizationFactory

    return OrganizationFactory(name="Alpha Clinic")


@pytest.fixture
def other_org(db):
    from tests.accounts.factories import OrganizationFactory

    return OrganizationFactory(name="Beta Hospital")


def _member(org, role):
    from tests.accounts.factories import MembershipFactory

    return MembershipFactory(organization=org, role=role).user


@pytest.fixture
def owner(org):
    return _member(org, Role.OWNER)


@pytest.fixture
def other_owner(other_org):
    return _member(other_org, Role.OWNER)


@pytest.fixture
def make_member():
    return _member


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def api_key_for():
    """Create an API key for an organisation and return the raw secret."""
    from accounts.services import api_key_create

    def make(org, *, scope="write", user=None):
        user = user or _member(org, Role.OWNER)
        _, raw = api_key_create(organization=org, created_by=user, name=f"test {scope}", scope=scope)
        return raw

    return make


def ci_requires(what: str, available: bool, reason: str) -> None:
    """Skip locally when a service is missing; fail under CI=true, where every tier must run."""
    if available:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is required under CI=true: {reason}")
    pytest.skip(f"{what} not available: {reason}")
