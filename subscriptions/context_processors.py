from accounts.capabilities import Capability
from accounts.permissions import request_can


def billing(request):
    """Billing state for the banner in the base layout: one query, and only for a signed-in organisation."""
    org = getattr(request, "organization", None)
    if org is None or getattr(request, "api_key", None) is not None:
        return {}
    from subscriptions import selectors

    sub = selectors.subscription_get(organization=org)
    if sub is None or sub.status not in ("past_due", "unpaid"):
        return {}
    ent = selectors.entitlements_for_subscription(sub)
    return {"billing_banner": {
        "level": "warn" if ent.can_start_analyses else "danger",
        "blocked": not ent.can_start_analyses,
        "grace_ends": selectors.past_due_grace_ends(sub),
        "can_manage": request_can(request, Capability.BILLING_MANAGE),
    }}
