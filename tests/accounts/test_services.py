from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from accounts import services
from accounts.capabilities import Role
from accounts.exceptions import Conflict, NotFound, PermissionDenied
from accounts.models import ApiKey, AuditEvent, Invitation, Membership
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_organization_create_makes_creator_owner_and_audits():
    user = UserFactory()
    org = services.organization_create(name="  Gamma Imaging ", owner=user)
    assert org.name == "Gamma Imaging" and org.slug == "gamma-imaging"
    assert Membership.objects.get(organization=org, user=user).role == Role.OWNER
    assert AuditEvent.objects.filter(organization=org, verb="organization.create", actor=user).exists()
    again = services.organization_create(name="Gamma Imaging", owner=user)
    assert again.slug == "gamma-imaging-2"


def test_last_owner_cannot_be_demoted_or_leave(org, owner):
    membership = Membership.objects.get(organization=org, user=owner)
    with pytest.raises(Conflict, match="last owner"):
        services.membership_change_role(organization=org, actor=owner, actor_role=Role.OWNER,
                                        membership_id=membership.pk, role=Role.ADMIN)
    with pytest.raises(Conflict, match="last owner"):
        services.membership_remove(organization=org, actor=owner, actor_role=Role.OWNER, membership_id=membership.pk)
    second = Membership.objects.create(organization=org, user=UserFactory(), role=Role.OWNER)
    services.membership_change_role(organization=org, actor=owner, actor_role=Role.OWNER,
                                    membership_id=membership.pk, role=Role.ADMIN)
    assert Membership.objects.get(pk=membership.pk).role == Role.ADMIN
    assert Membership.objects.get(pk=second.pk).role == Role.OWNER
    event = AuditEvent.objects.get(organization=org, verb="membership.role_change")
    assert event.details == {"user": owner.email, "from": "owner", "to": "admin"}


def test_admin_cannot_create_or_demote_owners(org, owner, make_member):
    admin = make_member(org, Role.ADMIN)
    viewer = make_member(org, Role.VIEWER)
    viewer_m = Membership.objects.get(organization=org, user=viewer)
    owner_m = Membership.objects.get(organization=org, user=owner)
    with pytest.raises(PermissionDenied):
        services.membership_change_role(organization=org, actor=admin, actor_role=Role.ADMIN,
                                        membership_id=viewer_m.pk, role=Role.OWNER)
    with pytest.raises(PermissionDenied):
        services.membership_change_role(organization=org, actor=admin, actor_role=Role.ADMIN,
                                        membership_id=owner_m.pk, role=Role.VIEWER)


def test_membership_of_another_org_is_not_found(org, owner, other_org, other_owner):
    theirs = Membership.objects.get(organization=other_org, user=other_owner)
    with pytest.raises(NotFound):
        services.membership_change_role(organization=org, actor=owner, actor_role=Role.OWNER,
                                        membership_id=theirs.pk, role=Role.VIEWER)
    with pytest.raises(NotFound):
        services.membership_remove(organization=org, actor=owner, actor_role=Role.OWNER, membership_id=theirs.pk)
    assert Membership.objects.filter(pk=theirs.pk, role=Role.OWNER).exists()


def test_invitation_round_trip(org, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invitation, url = services.invitation_create(organization=org, invited_by=owner, actor_role=Role.OWNER,
                                                     email="New.Person@Example.org", role=Role.CLINICIAN)
    assert invitation.email == "new.person@example.org"
    assert len(mail.outbox) == 1 and url in mail.outbox[0].body
    token = url.rstrip("/").rsplit("/", 1)[-1]
    assert token not in invitation.token_hash  # only the hash is stored
    newcomer = UserFactory(email="new.person@example.org")
    membership = services.invitation_accept(token=token, user=newcomer)
    assert membership.organization == org and membership.role == Role.CLINICIAN
    with pytest.raises(Conflict, match="accepted"):
        services.invitation_accept(token=token, user=newcomer)


def test_invitation_rules(org, owner, make_member):
    member = make_member(org, Role.VIEWER)
    with pytest.raises(Conflict, match="already a member"):
        services.invitation_create(organization=org, invited_by=owner, actor_role=Role.OWNER, email=member.email,
                                   role=Role.VIEWER)
    _, url = services.invitation_create(organization=org, invited_by=owner, actor_role=Role.OWNER,
                                        email="x@example.org", role=Role.VIEWER)
    with pytest.raises(Conflict, match="pending invitation"):
        services.invitation_create(organization=org, invited_by=owner, actor_role=Role.OWNER, email="x@example.org",
                                   role=Role.VIEWER)
    token = url.rstrip("/").rsplit("/", 1)[-1]
    with pytest.raises(PermissionDenied, match="sent to x@example.org"):
        services.invitation_accept(token=token, user=UserFactory(email="someone.else@example.org"))
    Invitation.objects.filter(email="x@example.org").update(expires_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(Conflict, match="expired"):
        services.invitation_accept(token=token, user=UserFactory(email="x@example.org"))
    with pytest.raises(NotFound):
        services.invitation_accept(token="not-a-token", user=owner)


def test_api_key_is_shown_once_and_stored_hashed(org, owner, other_org):
    key, raw = services.api_key_create(organization=org, created_by=owner, name="PACS bridge", scope="write")
    assert raw.startswith(f"lk_{key.prefix}_")
    stored = ApiKey.objects.get(pk=key.pk)
    assert raw not in (stored.key_hash, stored.prefix) and len(stored.key_hash) == 64
    found = services.api_key_authenticate(raw=raw)
    assert found.pk == key.pk and found.organization == org and found.last_used_at is not None
    assert services.api_key_authenticate(raw=raw[:-1] + ("A" if raw[-1] != "A" else "B")) is None
    assert services.api_key_authenticate(raw="garbage") is None
    with pytest.raises(NotFound):
        services.api_key_revoke(organization=other_org, actor=owner, api_key_id=key.pk)
    services.api_key_revoke(organization=org, actor=owner, api_key_id=key.pk)
    assert services.api_key_authenticate(raw=raw) is None
    verbs = set(AuditEvent.objects.filter(organization=org).values_list("verb", flat=True))
    assert {"api_key.create", "api_key.revoke"} <= verbs


def test_audit_events_are_append_only(org, owner):
    event = services.audit_record(organization=org, actor=owner, verb="test.thing")
    event.verb = "changed"
    with pytest.raises(RuntimeError):
        event.save()
    with pytest.raises(RuntimeError):
        event.delete()
    assert AuditEvent.objects.get(pk=event.pk).verb == "test.thing"


def test_demo_setup_is_idempotent():
    org, user, created = services.demo_setup(email="demo@example.org", password="pw-123456789", organization_name="D")
    assert created and org.is_demo and user.check_password("pw-123456789")
    org2, user2, created2 = services.demo_setup(email="demo@example.org", password="other", organization_name="D")
    assert (org2, user2, created2) == (org, user, False)


def test_demo_setup_for_a_user_left_without_organisation_sets_the_printed_password():
    from accounts.models import User

    User.objects.create_user(email="demo@example.org", password="forgotten-old-one", name="Demo")
    org, user, created = services.demo_setup(email="demo@example.org", password="pw-new-12345", organization_name="D")
    assert created and org.is_demo
    user.refresh_from_db()
    assert user.check_password("pw-new-12345")
