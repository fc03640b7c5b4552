"""REST endpoints for the signed-in principal, members and the audit log."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors
from accounts.capabilities import Capability
from accounts.models import ApiKey
from accounts.permissions import request_can


class MeOutput(serializers.Serializer):
    email = serializers.CharField()
    organization = serializers.DictField()
    role = serializers.CharField(allow_null=True)
    auth = serializers.ChoiceField(choices=["session", "api_key"])
    api_key_scope = serializers.CharField(allow_null=True)
    capabilities = serializers.ListField(child=serializers.CharField())


class MeView(APIView):
    """Who am I, in which organisation, allowed to do what."""

    required_capability = Capability.ORG_VIEW

    @extend_schema(responses=MeOutput)
    def get(self, request):
        org = request.organization
        key = request.auth if isinstance(request.auth, ApiKey) else None
        data = {
            "email": getattr(request.user, "email", ""),
            "organization": {"id": org.pk, "name": org.name, "slug": org.slug},
            "role": request.membership.role if request.membership else None,
            "auth": "api_key" if key else "session",
            "api_key_scope": key.scope if key else None,
            "capabilities": sorted(c.value for c in Capability if request_can(request._request, c)),
        }
        return Response(MeOutput(data).data)


class MemberOutput(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField(source="user.email")
    name = serializers.CharField(source="user.name")
    role = serializers.CharField()
    joined_at = serializers.DateTimeField(source="created_at")


class MemberListView(ListAPIView):
    required_capability = Capability.ORG_VIEW
    serializer_class = MemberOutput

    def get_queryset(self):
        return selectors.membership_list(organization=self.request.organization)


class AuditEventOutput(serializers.Serializer):
    id = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    actor = serializers.CharField(source="actor_label")
    verb = serializers.CharField()
    target_type = serializers.CharField()
    target_id = serializers.CharField()
    target = serializers.CharField(source="target_label")
    ip_address = serializers.IPAddressField(allow_null=True)
    details = serializers.JSONField()


class AuditEventListView(ListAPIView):
    required_capability = Capability.AUDIT_VIEW
    serializer_class = AuditEventOutput

    def get_queryset(self):
        params = self.request.query_params
        return selectors.audit_event_list(organization=self.request.organization, verb=params.get("verb", ""),
                                          actor=params.get("actor", ""))
