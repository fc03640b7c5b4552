"""Every read of accounts data, scoped by the caller's organisation."""

from __future__ import annotations

from datetime import date, datetime, time

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import ApiKey, AuditEvent, Invitation, Membership, Organization, User


def membership_list(*, organization: Organization) -> QuerySet[Membership]:
    return Membership.objects.filter(organization=organization).select_related("user").order_by("created_at")


def membership_get(*, organization: Organization, user: User) -> Membership | None:
    return Membership.objects.filter(organization=organization, user=user).first()


def memberships_for_user(*, user: User) -> QuerySet[Membership]:
    """The organisations a user belongs to (for the switcher): the user's own rows, not tenant data."""
    return Membership.objects.filter(user=user).select_related("organization").order_by("organization__name")


def invitation_list(*, organization: Organization, pending_only: bool = False) -> QuerySet[Invitation]:
    qs = Invitation.objects.filter(organization=organization).select_related("invited_by")
    if pending_only:
        qs = qs.filter(accepted_at=None, revoked_at=None, expires_at__gt=timezone.now())
    return qs


def api_key_list(*, organization: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization=organization).select_related("created_by")


def audit_event_list(*, organization: Organization, verb: str = "", actor: str = "",
                     since: date | None = None, until: date | None = None) -> QuerySet[AuditEvent]:
    qs = AuditEvent.objects.filter(organization=organization).select_related("actor")
    if verb:
        qs = qs.filter(verb__startswith=verb)
    if actor:
        qs = qs.filter(actor_label__icontains=actor)
    if since:
        qs = qs.filter(created_at__gte=timezone.make_aware(datetime.combine(since, time.min)))
    if until:
        qs = qs.filter(created_at__lte=timezone.make_aware(datetime.combine(until, time.max)))
    return qs


def audit_verbs(*, organization: Organization) -> list[str]:
    return list(AuditEvent.objects.filter(organization=organization).order_by("verb")
                .values_list("verb", flat=True).distinct())
