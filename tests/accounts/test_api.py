import pytest
from rest_framework.test import APIClient

from accounts.capabilities import Role
from accounts.models import ApiKey

pytestmark = pytest.mark.django_db


def api(raw=None):
    client = APIClient()
    if raw:
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client


def test_api_key_authenticates_into_its_own_organisation(org, other_org, api_key_for):
    raw = api_key_for(org, scope="read")
    api_key_for(other_org)
    response = api(raw).get("/api/v1/me/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["organization"]["name"] == "Alpha Clinic"
    assert body["auth"] == "api_key" and body["api_key_scope"] == "read"
    assert "members.manage" not in body["capabilities"]
    members = api(raw).get("/api/v1/members/").json()
    theirs = set(other_org.memberships.values_list("user__email", flat=True))
    ours = set(org.memberships.values_list("user__email", flat=True))
    assert theirs and {m["email"] for m in members["results"]} == ours


def test_invalid_or_revoked_key_gets_401_with_error_body(org, api_key_for):
    response = api("lk_deadbeef_nope").get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert "Invalid or revoked API key" in response.json()["error"]["message"]
    raw = api_key_for(org)
    ApiKey.objects.update(revoked_at="2026-01-01T00:00:00Z")
    assert api(raw).get("/api/v1/me/").status_code == 401


def test_unauthenticated_and_organisationless_requests_are_refused(db):
    from tests.accounts.factories import UserFactory

    assert api().get("/api/v1/me/").status_code in (401, 403)
    client = APIClient()
    client.force_login(UserFactory())
    response = client.get("/api/v1/me/")
    assert response.status_code == 403
    assert set(response.json()["error"]) == {"code", "message", "details"}


def test_session_auth_reflects_role(org, make_member):
    client = APIClient()
    client.force_login(make_member(org, Role.VIEWER))
    assert client.get("/api/v1/audit-events/").status_code == 403
    client.force_login(make_member(org, Role.ADMIN))
    assert client.get("/api/v1/audit-events/").status_code == 200


def test_audit_events_api_is_scoped(org, other_org, owner, other_owner):
    from accounts.services import audit_record

    audit_record(organization=org, actor=owner, verb="mine.event")
    audit_record(organization=other_org, actor=other_owner, verb="theirs.event")
    client = APIClient()
    client.force_login(owner)
    verbs = {e["verb"] for e in client.get("/api/v1/audit-events/").json()["results"]}
    assert "mine.event" in verbs and "theirs.event" not in verbs


def test_throttling_returns_429_with_error_body(org, api_key_for, monkeypatch):
    from rest_framework.throttling import UserRateThrottle

    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "3/min", "anon": "3/min"})
    from django.core.cache import cache

    cache.clear()
    raw = api_key_for(org)
    codes = [api(raw).get("/api/v1/me/").status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[-1] == 429
    body = api(raw).get("/api/v1/me/").json()["error"]
    assert body["code"] == "throttled" and body["details"]["retry_after_seconds"] > 0


def test_openapi_schema_and_docs_are_served_locally(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/v1/me/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html and "cdn" not in html.lower() and "//unpkg" not in html


def test_api_keys_need_a_plan_with_api_access(org, other_org, owner, api_key_for):
    from subscriptions.models import Plan
    from subscriptions.services import entitlements

    raw = api_key_for(org)
    other_raw = api_key_for(other_org)
    assert entitlements(org).api_access  # Free includes the API
    Plan.objects.filter(code=entitlements(org).plan_code).update(api_access=False)
    response = api(raw).get("/api/v1/me/")
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "api_access_not_included" and "Upgrade under Billing" in error["message"]
    client = APIClient()
    client.force_login(owner)
    assert client.get("/api/v1/me/").status_code == 200  # the web app keeps working
    Plan.objects.update(api_access=True)
    assert api(other_raw).get("/api/v1/me/").status_code == 200


def test_unknown_api_url_gets_the_json_error_body(org, api_key_for):
    response = api(api_key_for(org)).get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "not_found" and "/api/docs/" in response.json()["error"]["message"]
    page = api().get("/no-such-page/")
    assert page.status_code == 404 and not page["Content-Type"].startswith("application/json")


def test_api_server_error_is_json_without_a_traceback(rf):
    import json

    from accounts.api_errors import server_error

    response = server_error(rf.get("/api/v1/me/"))
    assert response.status_code == 500 and json.loads(response.content)["error"]["code"] == "server_error"


def test_uploaded_files_are_never_served_by_url_even_under_debug(settings):
    import importlib

    from django.urls import Resolver404, resolve

    import config.urls

    settings.DEBUG = True
    try:
        urls = importlib.reload(config.urls)
        with pytest.raises(Resolver404):
            resolve(f"{settings.MEDIA_URL}imaging/org_1/anything.png", urlconf=urls)
    finally:
        settings.DEBUG = False
        importlib.reload(config.urls)
