"""Sign-in audit. Receivers only record; no business logic hides here."""

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from accounts.models import Membership
from accounts.services import audit_record


@receiver(user_logged_in)
def record_sign_in(sender, request, user, **kwargs) -> None:
    ip = request.META.get("REMOTE_ADDR") if request is not None else None
    orgs = [m.organization for m in Membership.objects.filter(user=user).select_related("organization")]
    for org in orgs or [None]:
        audit_record(organization=org, actor=user, verb="auth.sign_in", ip_address=ip)


@receiver(user_login_failed)
def record_failed_sign_in(sender, credentials, request=None, **kwargs) -> None:
    ip = request.META.get("REMOTE_ADDR") if request is not None else None
    audit_record(organization=None, actor=None, verb="auth.sign_in_failed", ip_address=ip,
                 actor_label=str(credentials.get("email") or credentials.get("username") or "")[:254])
