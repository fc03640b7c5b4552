import re

import pytest
from django.core import mail
from django.urls import reverse

from accounts.capabilities import Role
from accounts.models import ApiKey, AuditEvent, Membership
from accounts.tenancy import SESSION_KEY
from tests.accounts.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_anonymous_home_goes_to_login(client):
    response = client.get("/")
    assert response.status_code == 302 and response.url.startswith(reverse("account_login"))
    login = client.get(reverse("account_login"))
    assert login.status_code == 200 and b"Sign in" in login.content


def test_user_without_organisation_is_asked_to_create_one(client):
    user = UserFactory()
    client.force_login(user)
    assert client.get("/").url == reverse("accounts:organization-create")
    response = client.post(reverse("accounts:organization-create"), {"name": "Delta Labs"})
    assert response.status_code == 302
    assert Membership.objects.get(user=user).role == Role.OWNER
    assert b"Delta Labs" in client.get("/").content


def test_members_page_lists_only_this_organisation(owner_client, org, other_org, other_owner):
    page = owner_client.get(reverse("accounts:members")).content.decode()
    assert "Alpha Clinic" in page and other_owner.email not in page


def test_invite_by_web_sends_link_and_lists_pending(owner_client, org, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("accounts:invitation-create"),
                                     {"email": "colleague@example.org", "role": "clinician"}, follow=True)
    assert b"Invitation sent to colleague@example.org" in response.content
    assert b"colleague@example.org" in response.content
    link = re.search(r"https?://\S+/org/invitations/accept/\S+/", mail.outbox[0].body).group(0)
    path = link.split("//", 1)[1].split("/", 1)[1]
    colleague = UserFactory(email="colleague@example.org")
    owner_client.force_login(colleague)
    assert b"Join Alpha Clinic" in owner_client.get("/" + path).content
    owner_client.post("/" + path)
    assert Membership.objects.get(user=colleague, organization=org).role == Role.CLINICIAN


def test_viewer_cannot_manage_members(client, org, make_member):
    viewer = make_member(org, Role.VIEWER)
    client.force_login(viewer)
    response = client.post(reverse("accounts:invitation-create"), {"email": "x@example.org", "role": "viewer"})
    assert response.status_code == 403
    assert client.get(reverse("accounts:api-keys")).status_code == 403


def test_role_change_and_last_owner_message(owner_client, org, owner, make_member):
    analyst = make_member(org, Role.ANALYST)
    m = Membership.objects.get(user=analyst)
    owner_client.post(reverse("accounts:member-role", args=[m.pk]), {"role": "admin"})
    assert Membership.objects.get(pk=m.pk).role == Role.ADMIN
    own = Membership.objects.get(user=owner)
    response = owner_client.post(reverse("accounts:member-remove", args=[own.pk]), follow=True)
    assert b"last owner cannot leave" in response.content
    assert Membership.objects.filter(pk=own.pk).exists()


def test_api_key_shown_once(owner_client, org):
    response = owner_client.post(reverse("accounts:api-keys"), {"name": "Bridge", "scope": "write"})
    raw = re.search(r'id="new-key" class="secret">([^<]+)<', response.content.decode()).group(1)
    key = ApiKey.objects.get(organization=org)
    assert raw.startswith(f"lk_{key.prefix}_")
    assert raw not in owner_client.get(reverse("accounts:api-keys")).content.decode()


def test_audit_log_filters_and_paginates(owner_client, org, owner, other_org, other_owner):
    from accounts.services import audit_record

    for i in range(60):
        audit_record(organization=org, actor=owner, verb="imaging.view", details={"n": i})
    audit_record(organization=org, actor=owner, verb="billing.change")
    audit_record(organization=other_org, actor=other_owner, verb="imaging.view", details={"secret": "beta"})
    page1 = owner_client.get(reverse("accounts:audit-log"), {"verb": "imaging.view"}).content.decode()
    assert "Page 1 of 2" in page1 and "billing.change" not in page1.split("<tbody>")[1]
    assert "beta" not in page1
    page2 = owner_client.get(reverse("accounts:audit-log"), {"verb": "imaging.view", "page": 2}).content.decode()
    assert "Page 2 of 2" in page2
    assert AuditEvent.objects.filter(organization=other_org).count() >= 1


def test_organisation_switcher(client, org, other_org):
    user = UserFactory()
    MembershipFactory(user=user, organization=org, role=Role.VIEWER)
    MembershipFactory(user=user, organization=other_org, role=Role.ANALYST)
    client.force_login(user)
    assert b'<select id="org-switch"' in client.get("/").content
    client.post(reverse("accounts:organization-switch"), {"organization_id": other_org.pk})
    assert client.session[SESSION_KEY] == other_org.pk
    outsider_org = MembershipFactory().organization
    client.post(reverse("accounts:organization-switch"), {"organization_id": outsider_org.pk})
    assert client.session[SESSION_KEY] == other_org.pk


def test_sign_in_is_audited_and_throttled(client, org, owner):
    assert client.post(reverse("account_login"), {"login": owner.email, "password": "correct-horse-battery"}
                       ).status_code == 302
    assert AuditEvent.objects.filter(organization=org, verb="auth.sign_in", actor=owner).exists()
    client.logout()
    pages = [client.post(reverse("account_login"), {"login": owner.email, "password": "wrong"}).content
             for _ in range(7)]
    assert b"Too many failed login attempts" not in pages[0]
    assert b"Too many failed login attempts" in pages[-1]
    # Even the right password is refused while the limit holds.
    response = client.post(reverse("account_login"), {"login": owner.email, "password": "correct-horse-battery"})
    assert response.status_code == 200 and b"Too many failed login attempts" in response.content
    assert AuditEvent.objects.filter(verb="auth.sign_in_failed", actor_label=owner.email).count() >= 5


def test_healthz_reports_workers(client, db):
    from accounts.health import WorkerHeartbeatThread

    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["database"]["ok"] is True and body["workers"]["live"] == 0
    beat = WorkerHeartbeatThread(hostname="w1@test", queues="default,gpu")
    beat.beat()
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["workers"]["live"] == 1
    beat.stop()
    assert client.get("/healthz").status_code == 503
