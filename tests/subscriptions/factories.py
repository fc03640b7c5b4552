from __future__ import annotations

from subscriptions.models import Plan, Subscription, SubscriptionStatus


def put_on_plan(org, code: str, *, status: str = SubscriptionStatus.ACTIVE, **fields) -> Subscription:
    """Place an organisation on a plan directly (no Stripe), for tests that only need its limits."""
    plan = Plan.objects.get(code=code)
    sub, _ = Subscription.objects.update_or_create(organization=org, defaults={"plan": plan, "status": status,
                                                                              **fields})
    return sub


def shrink_plan(code: str, **limits) -> Plan:
    Plan.objects.filter(code=code).update(**limits)
    return Plan.objects.get(code=code)
