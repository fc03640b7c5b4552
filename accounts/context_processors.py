from accounts.capabilities import Capability
from accounts.permissions import request_can
from accounts.selectors import memberships_for_user


def organization(request):
    """The current organisation, the switcher's list and the capabilities the navigation needs."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "current_organization": getattr(request, "organization", None),
        "current_membership": getattr(request, "membership", None),
        "user_memberships": memberships_for_user(user=user),
        "can": {cap.name.lower(): request_can(request, cap) for cap in Capability},
    }
