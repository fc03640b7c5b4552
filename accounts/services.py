"""Every write to accounts data: organisations, memberships, invitations, API keys, audit events."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Model
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django_scopes import scopes_disabled

from accounts.capabilities import ROLES_ASSIGNABLE_BY, Role
from accounts.exceptions import Conflict, NotFound, PermissionDenied, ServiceError
from accounts.models import ApiKey, AuditEvent, Invitation, Membership, Organization, User

API_KEY_PREFIX_LEN = 8


def audit_record(*, organization: Organization | None, actor: User | None, verb: str, target: Model | None = None,
                 ip_address: str | None = None, details: dict | None = None, actor_label: str = "") -> AuditEvent:
    """Append one audit event. Never raises for a missing actor; the label keeps who it was."""
    actor_obj = actor if actor is not None and getattr(actor, "pk", None) else None
    return AuditEvent.objects.create(
        organization=organization,
        actor=actor_obj,
        actor_label=actor_label or (actor_obj.email if actor_obj else ""),
        verb=verb,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=str(target)[:254] if target is not None else "",
        ip_address=ip_address,
        details=details or {},
    )


def _unique_slug(name: str) -> str:
    base = slugify(name)[:120] or "org"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def organization_create(*, name: str, owner: User, is_demo: bool = False) -> Organization:
    """Create an organisation with `owner` as its first owner."""
    name = name.strip()
    if not name:
        raise ServiceError("Give the organisation a name.")
    org = Organization.objects.create(name=name, slug=_unique_slug(name), is_demo=is_demo)
    Membership.objects.create(organization=org, user=owner, role=Role.OWNER)
    audit_record(organization=org, actor=owner, verb="organization.create", target=org)
    return org


def _owner_count(organization: Organization) -> int:
    return Membership.objects.filter(organization=organization, role=Role.OWNER).count()


def _membership_for_update(*, organization: Organization, membership_id: int) -> Membership:
    try:
        return (Membership.objects.select_for_update().select_related("user")
                .get(organization=organization, pk=membership_id))
    except Membership.DoesNotExist:
        raise NotFound("That member is not in this organisation.") from None


@transaction.atomic
def membership_change_role(*, organization: Organization, actor: User, actor_role: str, membership_id: int,
                           role: str) -> Membership:
    """Change a member's role. Admins cannot create owners; the last owner cannot be demoted."""
    if role not in Role.values:
        raise ServiceError(f"Unknown role '{role}'. Choose one of: {', '.join(Role.values)}.")
    if role not in ROLES_ASSIGNABLE_BY.get(actor_role, frozenset()):
        raise PermissionDenied("Only an owner can make someone an owner.")
    Organization.objects.select_for_update().get(pk=organization.pk)  # serialise owner-count checks
    membership = _membership_for_update(organization=organization, membership_id=membership_id)
    if membership.role == Role.OWNER and actor_role != Role.OWNER:
        raise PermissionDenied("Only an owner can change another owner's role.")
    if membership.role == Role.OWNER and role != Role.OWNER and _owner_count(organization) <= 1:
        raise Conflict("This is the last owner. Make someone else an owner first.")
    old = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(organization=organization, actor=actor, verb="membership.role_change", target=membership,
                 details={"user": membership.user.email, "from": old, "to": role})
    return membership


@transaction.atomic
def membership_remove(*, organization: Organization, actor: User, actor_role: str, membership_id: int) -> None:
    """Remove a member (or leave, when the member is the actor). The last owner can neither leave nor be removed."""
    from sentiment.services import digest_subscriptions_remove

    Organization.objects.select_for_update().get(pk=organization.pk)
    membership = _membership_for_update(organization=organization, membership_id=membership_id)
    is_self = membership.user_id == actor.pk
    if membership.role == Role.OWNER and _owner_count(organization) <= 1:
        raise Conflict("The last owner cannot leave or be removed. Make someone else an owner first.")
    if not is_self and membership.role == Role.OWNER and actor_role != Role.OWNER:
        raise PermissionDenied("Only an owner can remove another owner.")
    email = membership.user.email
    membership.delete()
    digest_subscriptions_remove(organization=organization, user=membership.user)
    audit_record(organization=organization, actor=actor, verb="membership.leave" if is_self else "membership.remove",
                 details={"user": email})


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def invitation_create(*, organization: Organization, invited_by: User, actor_role: str, email: str, role: str,
                      ip_address: str | None = None) -> tuple[Invitation, str]:
    """Invite someone by e-mail. Returns the invitation and the accept URL (the token is only in the e-mail)."""
    from subscriptions.services import seats_check_available

    email = email.strip().lower()
    if role not in ROLES_ASSIGNABLE_BY.get(actor_role, frozenset()):
        raise PermissionDenied("Only an owner can invite another owner.")
    if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
        raise Conflict(f"{email} is already a member of {organization.name}.")
    pending = Invitation.objects.filter(organization=organization, email__iexact=email, accepted_at=None,
                                        revoked_at=None, expires_at__gt=timezone.now())
    if pending.exists():
        raise Conflict(f"{email} already has a pending invitation. Revoke it to send a new one.")
    seats_check_available(organization=organization, adding=1, include_pending_invitations=True)
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        organization=organization, email=email, role=role, token_hash=_hash_token(token), invited_by=invited_by,
        expires_at=timezone.now() + timedelta(days=settings.INVITATION_TTL_DAYS),
    )
    url = settings.SITE_URL.rstrip("/") + reverse("accounts:invitation-accept", kwargs={"token": token})
    audit_record(organization=organization, actor=invited_by, verb="invitation.create", target=invitation,
                 ip_address=ip_address, details={"email": email, "role": role})
    body = (f"{invited_by.display_name} invited you to join {organization.name} on Lumen Insight as {role}.\n\n"
            f"Accept the invitation: {url}\n\nThe link expires in {settings.INVITATION_TTL_DAYS} days.")
    transaction.on_commit(lambda: send_mail(f"Join {organization.name} on Lumen Insight", body, None, [email]))
    return invitation, url


@transaction.atomic
def invitation_revoke(*, organization: Organization, actor: User, invitation_id: int) -> Invitation:
    try:
        invitation = Invitation.objects.select_for_update().get(organization=organization, pk=invitation_id)
    except Invitation.DoesNotExist:
        raise NotFound("That invitation does not exist.") from None
    if invitation.status != "pending":
        raise Conflict(f"This invitation is already {invitation.status}.")
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    audit_record(organization=organization, actor=actor, verb="invitation.revoke", target=invitation)
    return invitation


def invitation_for_token(*, token: str) -> Invitation:
    """Find an invitation by its secret token, across organisations (the token is the credential)."""
    with scopes_disabled():
        try:
            return Invitation.objects.select_related("organization").get(token_hash=_hash_token(token))
        except Invitation.DoesNotExist:
            raise NotFound("This invitation link is not valid. Ask for a new invitation.") from None


@transaction.atomic
def invitation_accept(*, token: str, user: User) -> Membership:
    """Accept an invitation for the signed-in user, whose e-mail must match the invited address."""
    from subscriptions.services import seats_check_available

    invitation = invitation_for_token(token=token)
    with scopes_disabled():
        invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    status = invitation.status
    if status != "pending":
        raise Conflict(f"This invitation is {status}. Ask the organisation for a new one.")
    if invitation.email.lower() != user.email.lower():
        raise PermissionDenied(f"This invitation was sent to {invitation.email}; sign in with that address.")
    org = invitation.organization
    if Membership.objects.filter(organization=org, user=user).exists():
        raise Conflict(f"You are already a member of {org.name}.")
    seats_check_available(organization=org, adding=1)
    membership = Membership.objects.create(organization=org, user=user, role=invitation.role)
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    audit_record(organization=org, actor=user, verb="membership.join", target=membership,
                 details={"role": invitation.role, "invitation": invitation.pk})
    return membership


def _hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def api_key_create(*, organization: Organization, created_by: User, name: str, scope: str,
                   ip_address: str | None = None) -> tuple[ApiKey, str]:
    """Create an API key. Returns the row and the full key, which is never stored and never shown again."""
    name = name.strip()
    if not name:
        raise ServiceError("Give the key a name that says where it is used.")
    if scope not in ("read", "write"):
        raise ServiceError("Scope must be 'read' or 'write'.")
    for _ in range(5):
        prefix = secrets.token_hex(API_KEY_PREFIX_LEN // 2)
        secret = secrets.token_urlsafe(32)
        raw = f"lk_{prefix}_{secret}"
        try:
            with transaction.atomic():
                key = ApiKey.objects.create(organization=organization, name=name, prefix=prefix,
                                            key_hash=_hash_key(raw), scope=scope, created_by=created_by)
            break
        except IntegrityError:  # prefix collision: draw again
            continue
    else:
        raise ServiceError("Could not create a key; try again.")
    audit_record(organization=organization, actor=created_by, verb="api_key.create", target=key,
                 ip_address=ip_address, details={"scope": scope})
    return key, raw


@transaction.atomic
def api_key_revoke(*, organization: Organization, actor: User, api_key_id: int) -> ApiKey:
    try:
        key = ApiKey.objects.select_for_update().get(organization=organization, pk=api_key_id)
    except ApiKey.DoesNotExist:
        raise NotFound("That API key does not exist.") from None
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_record(organization=organization, actor=actor, verb="api_key.revoke", target=key)
    return key


def api_key_authenticate(*, raw: str) -> ApiKey | None:
    """Return the active key for a presented secret, or None. Marks it used at most once a minute."""
    parts = raw.split("_")
    if len(parts) < 3 or parts[0] != "lk":
        return None
    with scopes_disabled():
        key = ApiKey.objects.select_related("organization", "created_by").filter(prefix=parts[1]).first()
        if key is None or key.revoked_at is not None:
            return None
        if not secrets.compare_digest(key.key_hash, _hash_key(raw)):
            return None
        now = timezone.now()
        if key.last_used_at is None or now - key.last_used_at > timedelta(seconds=60):
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
            key.last_used_at = now
    return key


def demo_setup(*, email: str, password: str, organization_name: str) -> tuple[Organization, User, bool]:
    """Create the demo owner and organisation if missing. Returns (org, user, created)."""
    from allauth.account.models import EmailAddress

    with transaction.atomic():
        user = User.objects.filter(email=email).first()
        if user is not None:
            membership = Membership.objects.filter(user=user).select_related("organization").first()
            if membership is not None:
                return membership.organization, user, False
            user.set_password(password)  # the caller prints this password: it must be the one that works
            user.save(update_fields=["password"])
        else:
            user = User.objects.create_user(email=email, password=password, name="Demo Owner")
        EmailAddress.objects.update_or_create(user=user, email=email, defaults={"verified": True, "primary": True})
        org = organization_create(name=organization_name, owner=user, is_demo=True)
    return org, user, True
