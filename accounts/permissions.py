"""Capability checks for the API (permission classes) and the web (view mixin), both via capabilities.py."""

from __future__ import annotations

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from rest_framework import permissions

from accounts.capabilities import Capability, api_key_has, role_has
from accounts.models import ApiKey


def request_can(request, capability: Capability | None) -> bool:
    """True when the request's principal (member or API key) holds the capability in its organisation."""
    if getattr(request, "organization", None) is None:
        return False
    api_key = getattr(request, "api_key", None)
    if api_key is not None:
        if capability is None:
            return True
        return api_key_has(api_key.scope, capability)
    membership = getattr(request, "membership", None)
    if membership is None:
        return False
    return capability is None or role_has(membership.role, capability)


def view_capability(view, method: str) -> Capability | None:
    per_method = getattr(view, "capabilities", None)
    if per_method and method in per_method:
        return per_method[method]
    return getattr(view, "required_capability", None)


class IsOrganizationMember(permissions.BasePermission):
    """Member of the request's organisation (or one of its API keys) with the view's capability.
    Read-only keys may only use safe methods."""

    message = "You need to be a member of an organisation with the right role for this."

    def has_permission(self, request, view) -> bool:
        if isinstance(request.auth, ApiKey):
            if request.method not in permissions.SAFE_METHODS and request.auth.scope != "write":
                self.message = "This API key is read-only. Create a key with write scope for this request."
                return False
            _require_api_access(request.auth.organization)
        return request_can(request._request, view_capability(view, request.method))


def _require_api_access(organization) -> None:
    """API keys work only on plans that include API access; sessions (the web app) always do."""
    from subscriptions.exceptions import ApiAccessNotIncluded
    from subscriptions.services import entitlements

    ent = entitlements(organization)
    if not ent.api_access:
        raise ApiAccessNotIncluded(f"The {ent.plan_name} plan does not include API access. Upgrade under Billing "
                                   "to use API keys; the web app keeps working.")


class OrganizationRequiredMixin(LoginRequiredMixin):
    """Web views: signed in, in an organisation, with `required_capability` (or `capabilities[method]`)."""

    required_capability: Capability | None = None

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        if request.organization is None:
            return redirect("accounts:organization-create")
        if not request_can(request, view_capability(self, request.method)):
            raise PermissionDenied("Your role does not allow this. Ask an owner or admin of the organisation.")
        return super().dispatch(request, *args, **kwargs)
