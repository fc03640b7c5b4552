from django.shortcuts import redirect, render

from accounts.capabilities import Capability
from accounts.permissions import request_can


def index(request):
    """Landing page of the area: an empty state until the area's features arrive."""
    if not request.user.is_authenticated:
        return redirect("account_login")
    if request.organization is None:
        return redirect("accounts:organization-create")
    return render(request, "subscriptions/index.html", {"can_view": request_can(request, Capability.ORG_VIEW)})
