"""Services that talk to Stripe (through `stripe_gateway`, imported lazily to keep the web process light):
checkout, plan changes, cancellation, the customer portal, webhook events, and overage reporting.

Webhook handling never trusts an event's copy of an object or the order events arrive in: each handler re-reads
the subscription or invoice from Stripe while holding the organisation's subscription lock and applies that
current state, so any arrival order converges on Stripe's final state.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from accounts.exceptions import Conflict, NotFound, ServiceError
from accounts.models import Organization, User
from accounts.services import audit_record
from subscriptions.exceptions import BillingUnavailable
from subscriptions.models import (
    Interval,
    Invoice,
    OverageReport,
    Plan,
    Subscription,
    SubscriptionStatus,
)
from subscriptions.selectors import LIVE_STRIPE_STATUSES
from subscriptions.services import seats_check_plan, subscription_ensure, subscription_lock

logger = logging.getLogger(__name__)

BASE_KINDS = tuple(Interval.values)
OVERAGE_KINDS = ("overage_images", "overage_texts")
METER_EVENT_MAX_AGE = timedelta(days=35)  # Stripe refuses meter events older than this
# A report is retried until it has this many attempts; then it leaves the queue and needs manual billing.
OVERAGE_MAX_ATTEMPTS = 20


def _gateway():
    from subscriptions import stripe_gateway

    return stripe_gateway


def stripe_enabled() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def price_id(plan_code: str, kind: str) -> str:
    return settings.STRIPE_PRICE_IDS.get(f"{plan_code}:{kind}", "")


def plan_purchasable(plan: Plan, interval: str) -> bool:
    """A paid plan can be bought when Stripe is configured and the plan's price for the interval is set."""
    return stripe_enabled() and not plan.is_free and bool(price_id(plan.code, interval))


def plan_for_price_ids(price_ids: list[str]) -> tuple[Plan, str] | None:
    """The plan and interval whose licensed base price is among `price_ids`."""
    lookup = {v: k for k, v in settings.STRIPE_PRICE_IDS.items() if v and k.split(":")[1] in BASE_KINDS}
    for pid in price_ids:
        if pid in lookup:
            code, interval = lookup[pid].split(":")
            plan = Plan.objects.filter(code=code).first()
            if plan is not None:
                return plan, interval
    return None


def _desired_prices(plan: Plan, interval: str) -> dict[str, str]:
    """Role -> price id: the licensed base price plus, for plans billing overage, one monthly metered price per
    meter. Metered prices are monthly whatever the base interval; flexible billing mode allows the mix."""
    prices = {"base": price_id(plan.code, interval)}
    if plan.overage_allowed:
        for kind in OVERAGE_KINDS:
            if price_id(plan.code, kind):
                prices[kind] = price_id(plan.code, kind)
    return prices


def _price_role(pid: str) -> str | None:
    for key, value in settings.STRIPE_PRICE_IDS.items():
        if value and value == pid:
            kind = key.split(":")[1]
            return "base" if kind in BASE_KINDS else kind
    return None


def _require_purchasable(plan_code: str, interval: str) -> Plan:
    plan = Plan.objects.filter(code=plan_code, is_public=True).first()
    if plan is None:
        raise NotFound(f"There is no plan called '{plan_code}'.")
    if interval not in Interval.values:
        raise ServiceError(f"Choose monthly, quarterly or yearly billing, not '{interval}'.")
    if not stripe_enabled():
        raise BillingUnavailable("Payments are not enabled on this installation. Set STRIPE_SECRET_KEY, "
                                 "STRIPE_WEBHOOK_SECRET and the STRIPE_PRICE_* settings to sell paid plans.")
    if not plan.is_free and not plan_purchasable(plan, interval):
        raise BillingUnavailable(f"The {plan.name} plan cannot be bought {Interval(interval).label.lower()} yet: "
                                 f"its Stripe price (STRIPE_PRICE_{plan.code.upper()}_{interval.upper()}) is not set.")
    return plan


def _unavailable(exc) -> BillingUnavailable:
    return BillingUnavailable(exc.message, details={"retryable": exc.retryable})


def checkout_start(*, organization: Organization, actor: User, plan_code: str, interval: str, success_url: str,
                   cancel_url: str) -> str:
    """Start a Stripe Checkout Session for a new subscription (with the plan's trial on the first paid
    subscription). Returns the URL to send the browser to."""
    gw = _gateway()
    plan = _require_purchasable(plan_code, interval)
    if plan.is_free:
        raise ServiceError("The Free plan needs no checkout.")
    sub = subscription_ensure(organization=organization)
    if sub.stripe_subscription_id and sub.status in LIVE_STRIPE_STATUSES:
        raise Conflict("This organisation already has a subscription. Change its plan from the billing page.")
    seats_check_plan(organization=organization, plan=plan)
    try:
        customer_id = sub.stripe_customer_id or gw.customer_create(
            email=actor.email, name=organization.name, organization_id=organization.pk)
        if not sub.stripe_customer_id:
            Subscription.objects.filter(pk=sub.pk, stripe_customer_id="").update(stripe_customer_id=customer_id)
        line_items = [{"price": pid} if role != "base" else {"price": pid, "quantity": 1}
                      for role, pid in _desired_prices(plan, interval).items()]
        metadata = {"organization_id": str(organization.pk), "plan": plan.code, "interval": interval}
        session = gw.checkout_session_create(
            customer_id=customer_id, line_items=line_items, trial_days=0 if sub.trial_used else plan.trial_days,
            metadata=metadata, client_reference_id=str(organization.pk), success_url=success_url,
            cancel_url=cancel_url)
    except gw.GatewayError as exc:
        raise _unavailable(exc) from exc
    audit_record(organization=organization, actor=actor, verb="billing.checkout_start", target=sub,
                 details={"plan": plan.code, "interval": interval, "checkout_session": session.id})
    return session.url


def plan_change(*, organization: Organization, actor: User, plan_code: str, interval: str) -> Subscription:
    """Move a Stripe subscription to another paid plan or interval, prorated. Moving to Free cancels at the
    end of the period instead. Refused while the organisation has more members than the new plan's seats."""
    gw = _gateway()
    sub = subscription_ensure(organization=organization)
    if not sub.stripe_subscription_id or sub.status not in LIVE_STRIPE_STATUSES:
        raise Conflict("There is no paid subscription to change. Choose a plan on the pricing page.")
    plan = _require_purchasable(plan_code, interval)
    seats_check_plan(organization=organization, plan=plan)
    if plan.is_free:
        return subscription_cancel(organization=organization, actor=actor)
    if plan.pk == sub.plan_id and interval == sub.interval:
        raise Conflict(f"You are already on the {plan.name} plan, billed {Interval(interval).label.lower()}.")
    old = (sub.plan.code, sub.interval)
    try:
        current = gw.subscription_retrieve(sub.stripe_subscription_id)
        wanted = _desired_prices(plan, interval)
        items, seen = [], set()
        for item in current.items:
            role = _price_role(item.price_id)
            if role in wanted and role not in seen:
                items.append({"id": item.id, "price": wanted[role]})
                seen.add(role)
            else:
                items.append({"id": item.id, "deleted": True})
        items += [{"price": pid} for role, pid in wanted.items() if role not in seen]
        state = gw.subscription_update(sub.stripe_subscription_id, items=items, metadata={
            "organization_id": str(organization.pk), "plan": plan.code, "interval": interval})
    except gw.GatewayError as exc:
        raise _unavailable(exc) from exc
    audit_record(organization=organization, actor=actor, verb="billing.plan_change_request", target=sub,
                 details={"from": f"{old[0]}:{old[1]}", "to": f"{plan.code}:{interval}", "proration": True})
    return subscription_apply_state(organization=organization, state=state) or sub


def _set_cancel(*, organization: Organization, actor: User, cancel: bool) -> Subscription:
    gw = _gateway()
    sub = subscription_ensure(organization=organization)
    if not sub.stripe_subscription_id or sub.status not in LIVE_STRIPE_STATUSES:
        raise Conflict("There is no paid subscription to cancel.")
    if not stripe_enabled():
        raise BillingUnavailable("Payments are not enabled on this installation.")
    try:
        state = gw.subscription_update(sub.stripe_subscription_id, cancel_at_period_end=cancel)
    except gw.GatewayError as exc:
        raise _unavailable(exc) from exc
    audit_record(organization=organization, actor=actor, target=sub,
                 verb="billing.cancel_scheduled" if cancel else "billing.cancel_undone",
                 details={"period_end": state.current_period_end.isoformat() if state.current_period_end else None})
    return subscription_apply_state(organization=organization, state=state) or sub


def subscription_cancel(*, organization: Organization, actor: User) -> Subscription:
    """Cancel at the end of the paid period; the plan's limits apply until then, then Free's."""
    return _set_cancel(organization=organization, actor=actor, cancel=True)


def subscription_resume(*, organization: Organization, actor: User) -> Subscription:
    """Undo a scheduled cancellation."""
    return _set_cancel(organization=organization, actor=actor, cancel=False)


def portal_open(*, organization: Organization, actor: User, return_url: str) -> str:
    """A Customer Portal session (payment methods, invoices) for the organisation's Stripe customer."""
    gw = _gateway()
    sub = subscription_ensure(organization=organization)
    if not stripe_enabled():
        raise BillingUnavailable("Payments are not enabled on this installation.")
    if not sub.stripe_customer_id:
        raise Conflict("There is no payment method to manage yet. Choose a paid plan first.")
    try:
        url = gw.portal_session_create(customer_id=sub.stripe_customer_id, return_url=return_url)
    except gw.GatewayError as exc:
        raise _unavailable(exc) from exc
    audit_record(organization=organization, actor=actor, verb="billing.portal_open", target=sub)
    return url


# --- webhooks -------------------------------------------------------------------------------------------------

def organization_for_stripe(*, metadata: dict | None = None, customer_id: str = "",
                      reference: str = "") -> Organization | None:
    if customer_id:
        sub = Subscription.objects.select_related("organization").filter(stripe_customer_id=customer_id).first()
        if sub is not None:
            return sub.organization
    for candidate in (reference, (metadata or {}).get("organization_id", "")):
        if str(candidate).isdigit():
            org = Organization.objects.filter(pk=int(candidate)).first()
            if org is not None:
                return org
    return None


def audit_stripe(organization: Organization, verb: str, target=None, **details) -> None:
    audit_record(organization=organization, actor=None, actor_label="stripe", verb=verb, target=target,
                 details=details)


def subscription_apply_state(*, organization: Organization, state) -> Subscription | None:
    """Apply a Stripe subscription's current state to the organisation's row. A state for a different, older or
    ended subscription than the one we track is stale and ignored. Returns the row, or None when ignored."""
    with transaction.atomic():
        sub = subscription_lock(organization=organization)
        if sub.stripe_subscription_id and sub.stripe_subscription_id != state.id:
            newer = sub.stripe_created_at is None or state.created >= sub.stripe_created_at
            if not (state.is_live and (newer or sub.status not in LIVE_STRIPE_STATUSES)):
                logger.info("Ignoring stale subscription %s for org %s", state.id, organization.pk)
                return None
        before = (sub.plan.code, sub.interval, sub.status)
        match = plan_for_price_ids([i.price_id for i in state.items])
        if state.status in LIVE_STRIPE_STATUSES and match is not None:
            sub.plan, sub.interval = match
        elif state.status not in LIVE_STRIPE_STATUSES:
            sub.plan = Plan.objects.get(code="free")  # ended: Free's limits; ledger, results, invoices are kept
        sub.status = state.status
        sub.stripe_subscription_id = state.id
        sub.stripe_customer_id = state.customer_id or sub.stripe_customer_id
        sub.stripe_created_at = state.created
        sub.current_period_end = state.current_period_end
        sub.trial_end = state.trial_end
        sub.trial_used = sub.trial_used or bool(state.trial_end)
        sub.cancel_at_period_end = state.cancel_at_period_end
        if state.status in (SubscriptionStatus.PAST_DUE, SubscriptionStatus.UNPAID):
            sub.past_due_since = sub.past_due_since or timezone.now()
        else:
            sub.past_due_since = None
        sub.save()
        after = (sub.plan.code, sub.interval, sub.status)
        if before[:2] != after[:2]:
            audit_stripe(organization, "billing.plan_change", sub, source="stripe", subscription=state.id,
                          **{"from": f"{before[0]}:{before[1]}", "to": f"{after[0]}:{after[1]}"})
        if before[2] != after[2]:
            audit_stripe(organization, "billing.status_change", sub, subscription=state.id,
                          **{"from": before[2], "to": after[2]})
    return sub


def subscription_sync(*, stripe_subscription_id: str, organization: Organization | None = None) -> Subscription | None:
    """Re-read a subscription from Stripe and apply it. The read happens under the organisation's lock, so two
    workers handling events of one subscription cannot apply an older read after a newer one."""
    gw = _gateway()
    if organization is None:
        state = gw.subscription_retrieve(stripe_subscription_id)
        organization = organization_for_stripe(metadata=state.metadata, customer_id=state.customer_id)
        if organization is None:
            logger.warning("Stripe subscription %s belongs to no organisation", stripe_subscription_id)
            return None
    with transaction.atomic():
        subscription_lock(organization=organization)
        state = gw.subscription_retrieve(stripe_subscription_id)
        return subscription_apply_state(organization=organization, state=state)


def invoice_sync(*, stripe_invoice_id: str) -> tuple[Organization | None, Invoice | None]:
    """Re-read an invoice from Stripe and mirror it (number, status, amounts, PDF link)."""
    state = _gateway().invoice_retrieve(stripe_invoice_id)
    org = organization_for_stripe(customer_id=state.customer_id)
    if org is None:
        return None, None
    with scope(organization=org):
        invoice, _ = Invoice.objects.update_or_create(stripe_id=state.id, defaults={
            "organization": org, "number": state.number, "status": state.status, "currency": state.currency,
            "amount_due": state.amount_due, "amount_paid": state.amount_paid,
            "hosted_invoice_url": state.hosted_invoice_url, "invoice_pdf": state.invoice_pdf,
            "period_start": state.period_start, "period_end": state.period_end, "created_at": state.created})
    if state.subscription_id:
        subscription_sync(stripe_subscription_id=state.subscription_id, organization=org)
    return org, invoice


# --- overage ---------------------------------------------------------------------------------------------------

def _overage_abandon(report: OverageReport, reason: str) -> None:
    """Take a report out of the send queue for good and tell operators, who must bill it by hand."""
    report.attempts = max(report.attempts, OVERAGE_MAX_ATTEMPTS)
    report.last_error = f"{reason[:470]}; bill it manually."
    report.save(update_fields=["attempts", "last_error"])
    logger.error("Overage report %s abandoned: %s (%s units of %s for Stripe customer %s, organisation %s, "
                 "occurred %s). Bill it manually; the admin lists it under Overage reports, 'Abandoned'.",
                 report.identifier, reason, report.value, report.event_name, report.stripe_customer_id,
                 report.organization_id, report.occurred_at.isoformat())


def overage_report_send(*, report_id: int) -> bool:
    """Send one Billing Meter event. The identifier comes from the ledger row, so resending is harmless.

    A report Stripe can no longer accept (older than its 35-day window) or that failed OVERAGE_MAX_ATTEMPTS times
    is abandoned: it leaves the queue (so it cannot starve newer reports) and an error is logged."""
    gw = _gateway()
    with scopes_disabled(), transaction.atomic():
        report = OverageReport.objects.select_for_update().filter(
            pk=report_id, sent_at=None, attempts__lt=OVERAGE_MAX_ATTEMPTS).first()
        if report is None:
            return False
        if timezone.now() - report.occurred_at > METER_EVENT_MAX_AGE:
            _overage_abandon(report, "Older than the 35 days Stripe accepts for meter events")
            return False
        try:
            gw.meter_event_create(event_name=report.event_name, customer_id=report.stripe_customer_id,
                                  value=report.value, identifier=report.identifier, timestamp=report.occurred_at)
        except gw.GatewayError as exc:
            report.attempts += 1
            if report.attempts >= OVERAGE_MAX_ATTEMPTS:
                _overage_abandon(report, f"Sending failed {report.attempts} times, last: {exc.message}")
            else:
                report.last_error = exc.message[:500]
                report.save(update_fields=["attempts", "last_error"])
            return False
        report.sent_at = timezone.now()
        report.attempts += 1
        report.last_error = ""
        report.save(update_fields=["sent_at", "attempts", "last_error"])
    return True
