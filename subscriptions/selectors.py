"""Every read of plans, entitlements, usage and invoices, always for an explicit organisation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone
from django_scopes import scope

from accounts.models import Membership, Organization
from subscriptions.models import Invoice, Meter, Plan, Subscription, SubscriptionStatus, UsageEntry, UsageState

FREE_PLAN_CODE = "free"
# Statuses whose paid plan applies; anything else (cancelled, expired checkout, paused trial) gets free limits.
PAID_STATUSES = frozenset({SubscriptionStatus.TRIALING, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE,
                           SubscriptionStatus.UNPAID})
LIVE_STRIPE_STATUSES = PAID_STATUSES


def period_start(moment: datetime | None = None) -> date:
    """Quotas run per calendar month in UTC: the first day of the month containing `moment`."""
    return (moment or timezone.now()).astimezone(UTC).date().replace(day=1)


def period_end(start: date) -> date:
    """The first day of the next quota month (exclusive end)."""
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def plan_list(*, public_only: bool = True) -> QuerySet[Plan]:
    qs = Plan.objects.all()
    return qs.filter(is_public=True) if public_only else qs


def plan_get(*, code: str) -> Plan | None:
    return Plan.objects.filter(code=code).first()


def free_plan() -> Plan:
    """The Free plan row; before the catalogue is seeded (a flushed test database) the shipped defaults."""
    from subscriptions.catalogue import FREE_PLAN

    return Plan.objects.filter(code=FREE_PLAN_CODE).first() or Plan(**FREE_PLAN)


def subscription_get(*, organization: Organization) -> Subscription | None:
    """The organisation's subscription row, or None while it has never needed one (it is then on Free)."""
    return Subscription.objects.select_related("plan").filter(organization=organization).first()


@dataclass(frozen=True)
class Entitlements:
    """What an organisation may do right now, after applying its subscription's status."""

    plan_code: str
    plan_name: str
    status: str
    interval: str
    images_per_month: int
    texts_per_month: int
    seats: int
    api_access: bool
    max_concurrent_jobs: int
    overage_allowed: bool
    overage_price_image: Decimal
    overage_price_text: Decimal
    can_start_analyses: bool
    blocked_reason: str

    def included(self, meter: str) -> int:
        return self.images_per_month if meter == Meter.IMAGES else self.texts_per_month

    def overage_unit_price(self, meter: str) -> Decimal:
        return self.overage_price_image if meter == Meter.IMAGES else self.overage_price_text


def past_due_grace_ends(subscription: Subscription) -> datetime | None:
    if subscription.past_due_since is None:
        return None
    return subscription.past_due_since + timedelta(days=settings.BILLING_PAST_DUE_GRACE_DAYS)


def entitlements_for_subscription(subscription: Subscription | None, *, now: datetime | None = None) -> Entitlements:
    now = now or timezone.now()
    if subscription is None:
        plan, status, interval = free_plan(), SubscriptionStatus.FREE, "month"
    else:
        plan, status, interval = subscription.plan, subscription.status, subscription.interval
        if status not in PAID_STATUSES and status != SubscriptionStatus.FREE:
            plan = free_plan()  # cancelled or never paid: free limits, nothing deleted
    can_start, reason = True, ""
    if status == SubscriptionStatus.UNPAID:
        can_start = False
        reason = "Payment for this organisation's plan failed. Update the payment method under Billing to resume."
    elif status == SubscriptionStatus.PAST_DUE and subscription is not None:
        grace_end = past_due_grace_ends(subscription)
        if grace_end is not None and now >= grace_end:
            can_start = False
            reason = (f"Payment is overdue since {subscription.past_due_since:%-d %b}, so new analyses are paused. "
                      "Your results stay available. Update the payment method under Billing to resume.")
    return Entitlements(
        plan_code=plan.code, plan_name=plan.name, status=status, interval=interval,
        images_per_month=plan.images_per_month, texts_per_month=plan.texts_per_month, seats=plan.seats,
        api_access=plan.api_access, max_concurrent_jobs=plan.max_concurrent_jobs,
        overage_allowed=plan.overage_allowed, overage_price_image=plan.overage_price_image,
        overage_price_text=plan.overage_price_text, can_start_analyses=can_start, blocked_reason=reason,
    )


def entitlements(organization: Organization) -> Entitlements:
    """The organisation's current entitlements. An organisation with no subscription row is on Free."""
    return entitlements_for_subscription(subscription_get(organization=organization))


def usage_totals(*, organization: Organization, meter: str, period: date) -> dict[str, int]:
    """Ledger sums for one meter and quota month: reserved, committed, released, counted (against the quota),
    pending (reserved and not yet settled) and overage (committed above the included amount)."""
    with scope(organization=organization):
        sums = UsageEntry.objects.filter(organization=organization, meter=meter, period=period).aggregate(
            reserved=Sum("quantity", filter=Q(state=UsageState.RESERVED)),
            committed=Sum("quantity", filter=Q(state=UsageState.COMMITTED)),
            released=Sum("quantity", filter=Q(state=UsageState.RELEASED)),
            overage=Sum("overage_quantity", filter=Q(state=UsageState.COMMITTED)),
        )
    totals = {k: int(v or 0) for k, v in sums.items()}
    totals["counted"] = totals["reserved"] - totals["released"]
    totals["pending"] = totals["counted"] - totals["committed"]
    return totals


@dataclass(frozen=True)
class MeterUsage:
    meter: str
    label: str
    used: int
    pending: int
    included: int
    remaining: int
    overage: int
    overage_allowed: bool
    period_start: date
    period_end: date

    @property
    def percent(self) -> int:
        counted = self.used + self.pending
        if self.included <= 0:
            return 100 if counted else 0
        return min(100, max(1 if counted else 0, round(100 * counted / self.included)))  # any use shows


def usage_summary(*, organization: Organization, moment: datetime | None = None) -> list[MeterUsage]:
    """Every meter for the current quota month: used (committed), pending, included, remaining, overage."""
    ent = entitlements(organization)
    start = period_start(moment)
    end = period_end(start)
    rows = []
    for meter in Meter:
        totals = usage_totals(organization=organization, meter=meter, period=start)
        included = ent.included(meter)
        rows.append(MeterUsage(
            meter=meter.value, label=meter.label, used=totals["committed"], pending=totals["pending"],
            included=included, remaining=max(0, included - totals["counted"]), overage=totals["overage"],
            overage_allowed=ent.overage_allowed, period_start=start, period_end=end,
        ))
    return rows


def seats_used(*, organization: Organization) -> int:
    return Membership.objects.filter(organization=organization).count()


def invoice_list(*, organization: Organization) -> QuerySet[Invoice]:
    return Invoice.objects.filter(organization=organization)


def usage_entry_list(*, organization: Organization) -> QuerySet[UsageEntry]:
    return UsageEntry.objects.filter(organization=organization, state=UsageState.RESERVED).prefetch_related(
        "settlements")
