"""Finds the organisation of each request and activates the query scope that guards tenant data."""

from __future__ import annotations

from django.http import HttpRequest
from django_scopes import scope

from accounts.models import Membership

SESSION_KEY = "organization_id"
API_KEY_HEADER_PREFIX = "Api-Key "


def _membership_for(request: HttpRequest) -> Membership | None:
    user = request.user
    memberships = Membership.objects.filter(user=user).select_related("organization")
    wanted = request.session.get(SESSION_KEY)
    membership = memberships.filter(organization_id=wanted).first() if wanted else None
    if membership is None:
        membership = memberships.order_by("created_at").first()
        if membership is not None:
            request.session[SESSION_KEY] = membership.organization_id
    return membership


class OrganizationMiddleware:
    """Sets request.organization, request.membership and request.api_key, then runs the view inside
    `scope(organization=...)` so any query on tenant data outside that organisation fails or comes back empty."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        from accounts.services import api_key_authenticate

        request.organization = None
        request.membership = None
        request.api_key = None
        header = request.headers.get("Authorization", "")
        if header.startswith(API_KEY_HEADER_PREFIX):
            key = api_key_authenticate(raw=header[len(API_KEY_HEADER_PREFIX):].strip())
            if key is not None:
                request.api_key = key
                request.organization = key.organization
        elif request.user.is_authenticated:
            membership = _membership_for(request)
            if membership is not None:
                request.membership = membership
                request.organization = membership.organization
        # An empty list scopes to nothing: a request without an organisation sees no tenant rows at all.
        with scope(organization=request.organization or []):
            return self.get_response(request)


def client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR")
