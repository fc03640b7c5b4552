"""Objects behind accounts' id-taking URLs, built in a given organisation (see tests/test_tenant_isolation.py)."""

from accounts.capabilities import Role
from accounts.models import Membership


def _membership(org):
    from tests.accounts.factories import MembershipFactory

    return {"pk": MembershipFactory(organization=org, role=Role.VIEWER).pk}


def _invitation(org):
    from accounts.services import invitation_create

    inviter = Membership.objects.filter(organization=org, role=Role.OWNER).first().user
    invitation, _ = invitation_create(organization=org, invited_by=inviter, actor_role=Role.OWNER,
                                      email=f"invitee-{org.pk}@example.org", role=Role.VIEWER)
    return {"pk": invitation.pk}


def _api_key(org):
    from accounts.services import api_key_create

    owner = Membership.objects.filter(organization=org, role=Role.OWNER).first().user
    key, _ = api_key_create(organization=org, created_by=owner, name="theirs", scope="write")
    return {"pk": key.pk}


OBJECT_ROUTES = {
    "accounts:member-role": _membership,
    "accounts:member-remove": _membership,
    "accounts:invitation-revoke": _invitation,
    "accounts:api-key-revoke": _api_key,
}
