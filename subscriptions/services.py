"""Quotas, seats and plans: every write to the usage ledger and the subscription row that does not talk to Stripe.

Other apps call only `usage_reserve`, `usage_commit`, `usage_release`, `entitlements`, `seats_check_available` and
`jobs_slots_free`.
Every quota decision locks the organisation's Subscription row first, so concurrent reservations for one
organisation are serialised (PostgreSQL: SELECT ... FOR UPDATE; SQLite: the IMMEDIATE transaction's write lock).
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django_scopes import scope

from accounts.exceptions import Conflict, NotFound, ServiceError
from accounts.models import Invitation, Organization, User
from accounts.services import audit_record
from subscriptions.exceptions import BillingBlocked, QuotaExceeded, SeatLimitReached
from subscriptions.models import (
    Interval,
    Meter,
    OverageReport,
    Plan,
    Subscription,
    SubscriptionStatus,
    UsageEntry,
    UsageState,
)
from subscriptions.selectors import (
    Entitlements,
    entitlements,
    entitlements_for_subscription,
    free_plan,
    period_end,
    period_start,
    seats_used,
    usage_totals,
)

__all__ = [
    "BillingBlocked", "Entitlements", "QuotaExceeded", "SeatLimitReached",
    "entitlements", "jobs_slots_free", "plan_catalogue_seed", "seats_check_available", "subscription_ensure",
    "subscription_plan_assign", "usage_commit", "usage_release", "usage_reserve",
]

METER_NOUNS = {Meter.IMAGES: ("Image", "images"), Meter.TEXTS: ("Text", "texts")}


def plan_catalogue_seed() -> None:
    """Create or refresh the shipped plans (migration 0002 does this for real databases)."""
    from subscriptions.catalogue import PLANS

    for row in PLANS:
        Plan.objects.update_or_create(code=row["code"], defaults={k: v for k, v in row.items() if k != "code"})


def subscription_ensure(*, organization: Organization) -> Subscription:
    """The organisation's subscription row, created on the Free plan the first time it is needed."""
    sub = Subscription.objects.filter(organization=organization).first()
    if sub is not None:
        return sub
    plan = free_plan()
    if plan.pk is None:
        plan_catalogue_seed()
        plan = free_plan()
    sub, _ = Subscription.objects.get_or_create(
        organization=organization, defaults={"plan": plan, "status": SubscriptionStatus.FREE})
    return sub


def subscription_lock(*, organization: Organization) -> Subscription:
    """Lock and return the organisation's subscription row (the quota lock). Call inside a transaction."""
    sub = Subscription.objects.select_for_update(of=("self",)).filter(organization=organization).first()
    if sub is None:
        subscription_ensure(organization=organization)
        sub = Subscription.objects.select_for_update(of=("self",)).get(organization=organization)
    return sub


def _quota_message(*, ent: Entitlements, meter: str, remaining: int, included: int, requested: int,
                   until: str) -> str:
    title, noun = METER_NOUNS[Meter(meter)]
    needs = f", and this needs {requested:,}" if remaining > 0 else ""
    return (f"{title} quota reached: {remaining:,} of {included:,} {noun} left this month on the {ent.plan_name} "
            f"plan{needs}. Upgrade under Billing or wait until {until}.")


@transaction.atomic
def usage_reserve(*, organization: Organization, meter: str, quantity: int, job_ref: str = "") -> UsageEntry:
    """Reserve `quantity` units of `meter` for a job, or raise QuotaExceeded / BillingBlocked.

    Call it in the same transaction that creates the job; settle the reservation with `usage_commit` when the
    job succeeds and `usage_release` when it fails or is cancelled."""
    meter = Meter(meter)
    if quantity <= 0:
        raise ServiceError("Usage must be reserved in positive amounts.")
    sub = subscription_lock(organization=organization)
    ent = entitlements_for_subscription(sub)
    if not ent.can_start_analyses:
        raise BillingBlocked(ent.blocked_reason, details={"status": ent.status})
    start = period_start()
    included = ent.included(meter)
    totals = usage_totals(organization=organization, meter=meter, period=start)
    remaining = max(0, included - totals["counted"])
    if quantity > remaining and not ent.overage_allowed:
        end = period_end(start)
        raise QuotaExceeded(
            _quota_message(ent=ent, meter=meter, remaining=remaining, included=included, requested=quantity,
                           until=f"{end.day} {end:%b}"),
            details={"meter": meter.value, "included": included, "used": totals["counted"], "remaining": remaining,
                     "requested": quantity, "period_end": end.isoformat(), "plan": ent.plan_code,
                     "upgrade_url": reverse("subscriptions:pricing")},
        )
    with scope(organization=organization):
        return UsageEntry.objects.create(organization=organization, meter=meter, state=UsageState.RESERVED,
                                         quantity=quantity, period=start, job_ref=job_ref[:100])


def _reservation_for_settle(reservation: UsageEntry | int) -> tuple[UsageEntry, Subscription]:
    from django_scopes import scopes_disabled

    pk = reservation.pk if isinstance(reservation, UsageEntry) else reservation
    with scopes_disabled():
        row = UsageEntry.objects.select_related("organization").filter(pk=pk, state=UsageState.RESERVED).first()
    if row is None:
        raise NotFound("That usage reservation does not exist.")
    sub = subscription_lock(organization=row.organization)  # serialise with reservations and other settlements
    return row, sub


@transaction.atomic
def usage_commit(*, reservation: UsageEntry | int, quantity: int | None = None) -> UsageEntry | None:
    """Charge a reservation: all of it, or `quantity` of it with the rest released. Idempotent: committing an
    already committed reservation returns the existing row. Units above the plan's included amount are recorded
    as overage and queued for Stripe's Billing Meter when the plan bills overage."""
    row, sub = _reservation_for_settle(reservation)
    org = row.organization
    with scope(organization=org):
        settled = {s.state: s for s in row.settlements.all()}
        if UsageState.COMMITTED in settled:
            return settled[UsageState.COMMITTED]
        if UsageState.RELEASED in settled:
            raise Conflict("This usage reservation was already released; reserve again to charge it.")
        amount = row.quantity if quantity is None else quantity
        if not 0 <= amount <= row.quantity:
            raise ServiceError(f"Commit between 0 and the {row.quantity} units reserved.")
        committed = None
        if amount:
            ent = entitlements_for_subscription(sub)
            before = usage_totals(organization=org, meter=row.meter, period=row.period)["committed"]
            included = ent.included(row.meter)
            overage = max(0, before + amount - included) - max(0, before - included)
            committed = UsageEntry.objects.create(
                organization=org, meter=row.meter, state=UsageState.COMMITTED, quantity=amount, period=row.period,
                reservation=row, job_ref=row.job_ref, overage_quantity=overage)
            if overage and ent.overage_allowed and sub.stripe_customer_id and sub.stripe_subscription_id:
                from django.conf import settings

                OverageReport.objects.create(
                    organization=org, entry=committed, identifier=f"lumen-usage-{committed.pk}",
                    event_name=settings.STRIPE_METER_EVENT_NAMES[row.meter], stripe_customer_id=sub.stripe_customer_id,
                    value=overage, occurred_at=committed.created_at)
        if amount < row.quantity:
            UsageEntry.objects.create(organization=org, meter=row.meter, state=UsageState.RELEASED,
                                      quantity=row.quantity - amount, period=row.period, reservation=row,
                                      job_ref=row.job_ref)
    return committed


@transaction.atomic
def usage_release(*, reservation: UsageEntry | int) -> None:
    """Give a failed or cancelled job's reservation back. Idempotent; a no-op once the reservation is settled."""
    row, _ = _reservation_for_settle(reservation)
    with scope(organization=row.organization):
        if row.settlements.exists():
            return
        UsageEntry.objects.create(organization=row.organization, meter=row.meter, state=UsageState.RELEASED,
                                  quantity=row.quantity, period=row.period, reservation=row, job_ref=row.job_ref)


def jobs_slots_free(*, organization: Organization, occupied: int | Callable[[], int]) -> int:
    """How many more jobs may start now under the plan's `max_concurrent_jobs` (never negative). `occupied` is the
    number of the organisation's jobs holding a slot (queued or running), or a callable that counts them.

    Inside a transaction it takes the organisation's quota lock first and counts under it, so the caller's decision
    (start the job, or let it wait) cannot race another one of the same organisation until the transaction ends."""
    if transaction.get_connection().in_atomic_block:
        ent = entitlements_for_subscription(subscription_lock(organization=organization))
    else:
        ent = entitlements(organization)
    occupied = occupied() if callable(occupied) else occupied
    return max(0, ent.max_concurrent_jobs - occupied)


def seats_check_available(*, organization: Organization, adding: int = 1,
                          include_pending_invitations: bool = False) -> None:
    """Raise SeatLimitReached when adding `adding` members would exceed the plan's seats.
    Inside a transaction it locks the subscription row, so two acceptances cannot both take the last seat."""
    if transaction.get_connection().in_atomic_block:
        ent = entitlements_for_subscription(subscription_lock(organization=organization))
    else:
        ent = entitlements(organization)
    used = seats_used(organization=organization)
    pending = 0
    if include_pending_invitations:
        with scope(organization=organization):
            pending = Invitation.objects.filter(organization=organization, accepted_at=None, revoked_at=None,
                                                expires_at__gt=timezone.now()).count()
    if used + pending + adding > ent.seats:
        waiting = f" and {pending} pending invitation(s)" if pending else ""
        raise SeatLimitReached(
            f"All {ent.seats} seats on the {ent.plan_name} plan are taken ({used} members{waiting}). "
            "Remove a member or upgrade under Billing to add more people.",
            details={"seats": ent.seats, "used": used, "pending_invitations": pending, "plan": ent.plan_code})


def seats_check_plan(*, organization: Organization, plan: Plan) -> None:
    """Refuse moving to `plan` while the organisation has more members than it has seats."""
    used = seats_used(organization=organization)
    if used > plan.seats:
        extra = used - plan.seats
        raise SeatLimitReached(
            f"The {plan.name} plan has {plan.seats} seats but {organization.name} has {used} members. "
            f"Remove {extra} member{'s' if extra != 1 else ''} under Organisation before switching.",
            details={"seats": plan.seats, "used": used, "plan": plan.code})


@transaction.atomic
def subscription_plan_assign(*, organization: Organization, plan_code: str, actor: User | None,
                             interval: str = Interval.MONTH, reason: str = "") -> Subscription:
    """Put an organisation on a plan without Stripe (operators: invoiced contracts, installs without payments).
    Refuses a plan with fewer seats than current members."""
    plan = Plan.objects.filter(code=plan_code).first()
    if plan is None:
        raise NotFound(f"There is no plan called '{plan_code}'.")
    if interval not in Interval.values:
        raise ServiceError(f"Unknown billing interval '{interval}'.")
    sub = subscription_lock(organization=organization)
    if sub.stripe_subscription_id and sub.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING,
                                                     SubscriptionStatus.PAST_DUE):
        raise Conflict("This organisation pays through Stripe; change its plan from the billing page instead.")
    seats_check_plan(organization=organization, plan=plan)
    old = sub.plan.code
    sub.plan = plan
    sub.interval = interval
    sub.status = SubscriptionStatus.FREE if plan.is_free else SubscriptionStatus.ACTIVE
    sub.past_due_since = None
    sub.save()
    audit_record(organization=organization, actor=actor, verb="billing.plan_change", target=sub,
                 actor_label="" if actor else "operator",
                 details={"from": old, "to": plan.code, "interval": interval, "source": "manual", "reason": reason})
    return sub
