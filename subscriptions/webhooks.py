"""Stripe webhook events: stored by their unique id when they arrive, then handled exactly once by a task.

Handlers take only ids from the payload and re-read the objects from Stripe (see `billing.subscription_sync`), so
replays and any arrival order end in Stripe's current state.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django_scopes import scopes_disabled

from accounts.capabilities import Capability, role_has
from accounts.models import Membership, Organization
from subscriptions.billing import audit_stripe, invoice_sync, organization_for_stripe, subscription_sync
from subscriptions.models import StripeEvent, Subscription
from subscriptions.services import subscription_ensure

logger = logging.getLogger(__name__)

HANDLED_EVENTS = frozenset({
    "checkout.session.completed", "customer.subscription.created", "customer.subscription.updated",
    "customer.subscription.deleted", "customer.subscription.trial_will_end", "invoice.paid",
    "invoice.payment_failed",
})


def stripe_event_store(*, event) -> tuple[StripeEvent, bool]:
    """Store a verified event by its unique id and queue its handling once. A replay returns (row, False)."""
    try:
        with transaction.atomic():
            row = StripeEvent.objects.create(stripe_id=event.id, type=event.type, livemode=event.livemode,
                                             payload=event.payload)
            transaction.on_commit(lambda: _enqueue_handling(row.pk))
    except IntegrityError:
        return StripeEvent.objects.get(stripe_id=event.id), False
    return row, True


def _enqueue_handling(event_id: int) -> None:
    """Queue the handling of a stored event. With the broker down the event is already stored, so Stripe must still
    get its 2xx (a 500 makes it resend, and the resend is a duplicate we would not queue): log, and leave the event
    to the `stripe_events_process_pending` sweep."""
    from subscriptions.tasks import stripe_event_handle

    try:
        stripe_event_handle.delay(event_id=event_id)
    except Exception:
        logger.warning("Could not queue Stripe event %s; the pending-events sweep will handle it", event_id,
                       exc_info=True)


def _notify_billing_contacts(organization: Organization, subject: str, body: str) -> None:
    emails = [m.user.email for m in Membership.objects.filter(organization=organization).select_related("user")
              if role_has(m.role, Capability.BILLING_MANAGE)]
    if emails:
        transaction.on_commit(lambda: send_mail(subject, body, None, emails))


def _handle(event: StripeEvent) -> Organization | None:
    obj = (event.payload.get("data") or {}).get("object") or {}
    kind = event.type
    if kind == "checkout.session.completed":
        org = organization_for_stripe(customer_id=_str(obj.get("customer")),
                                      reference=obj.get("client_reference_id") or "", metadata=obj.get("metadata"))
        if org is None or obj.get("mode") not in (None, "subscription"):
            return org
        sub = subscription_ensure(organization=org)
        if _str(obj.get("customer")) and not sub.stripe_customer_id:
            Subscription.objects.filter(pk=sub.pk).update(stripe_customer_id=_str(obj.get("customer")))
        if obj.get("subscription"):
            subscription_sync(stripe_subscription_id=_str(obj["subscription"]), organization=org)
        audit_stripe(org, "billing.checkout_complete", sub, checkout_session=obj.get("id"))
        return org
    if kind.startswith("customer.subscription."):
        org = organization_for_stripe(metadata=obj.get("metadata"), customer_id=_str(obj.get("customer")))
        sub = subscription_sync(stripe_subscription_id=obj["id"], organization=org)
        org = org or (sub.organization if sub else None)
        if org is not None and kind == "customer.subscription.trial_will_end":
            trial_end = sub.trial_end if sub else None
            when = f"{trial_end:%-d %b %Y}" if trial_end else "in a few days"
            audit_stripe(org, "billing.trial_will_end", sub, trial_end=trial_end.isoformat() if trial_end else None)
            _notify_billing_contacts(org, "Your Lumen Insight trial ends soon",
                                     f"The trial of {org.name} ends {when}. Add a payment method under Billing "
                                     "to keep your plan; otherwise the organisation moves to the Free plan.")
        return org
    if kind in ("invoice.paid", "invoice.payment_failed"):
        org, invoice = invoice_sync(stripe_invoice_id=obj["id"])
        if org is not None and kind == "invoice.paid":
            audit_stripe(org, "billing.invoice_paid", invoice, amount_paid=invoice.amount_paid,
                          currency=invoice.currency)
        elif org is not None:
            audit_stripe(org, "billing.payment_failed", invoice, amount_due=invoice.amount_due,
                          currency=invoice.currency)
            _notify_billing_contacts(org, "Payment failed for Lumen Insight",
                                     f"We could not collect payment for {org.name}. Update the payment method "
                                     f"under Billing within {settings.BILLING_PAST_DUE_GRACE_DAYS} days to keep "
                                     "running new analyses.")
        return org
    return None  # stored for the record; nothing to do


def _str(value) -> str:
    return (value.get("id", "") if isinstance(value, dict) else value) or ""


def stripe_event_process(*, event_id: int) -> bool:
    """Handle a stored event exactly once: the event row is locked, handled and marked processed in one
    transaction. Returns False when it was already processed (a redelivered task)."""
    with scopes_disabled(), transaction.atomic():
        event = StripeEvent.objects.select_for_update().filter(pk=event_id).first()
        if event is None or event.processed_at is not None:
            return False
        org = _handle(event) if event.type in HANDLED_EVENTS else None
        event.processed_at = timezone.now()
        event.organization = org
        event.attempts += 1
        event.last_error = ""
        event.save(update_fields=["processed_at", "organization", "attempts", "last_error"])
    return True


def stripe_event_record_failure(*, event_id: int, error: str) -> None:
    StripeEvent.objects.filter(pk=event_id, processed_at=None).update(
        attempts=F("attempts") + 1, last_error=error[:500])
