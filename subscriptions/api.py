"""REST endpoints: usage per meter for the current quota month."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.capabilities import Capability
from subscriptions import selectors


class MeterOutput(serializers.Serializer):
    meter = serializers.CharField()
    used = serializers.IntegerField(help_text="Committed this quota month")
    pending = serializers.IntegerField(help_text="Reserved by running jobs, not yet settled")
    included = serializers.IntegerField()
    remaining = serializers.IntegerField(help_text="Included minus used and pending, never below zero")
    overage = serializers.IntegerField(help_text="Committed above the included amount (billed per unit)")
    overage_allowed = serializers.BooleanField()
    period_start = serializers.DateField()
    period_end = serializers.DateField(help_text="Exclusive: the day the meter resets (UTC)")


class PlanOutput(serializers.Serializer):
    code = serializers.CharField(source="plan_code")
    name = serializers.CharField(source="plan_name")
    status = serializers.CharField()
    interval = serializers.CharField()
    seats = serializers.IntegerField()
    api_access = serializers.BooleanField()
    max_concurrent_jobs = serializers.IntegerField()
    can_start_analyses = serializers.BooleanField()


class UsageOutput(serializers.Serializer):
    plan = PlanOutput()
    meters = MeterOutput(many=True)


class UsageView(APIView):
    """Every meter with used, included, remaining and the period end, plus the plan in force."""

    required_capability = Capability.ORG_VIEW

    @extend_schema(responses=UsageOutput)
    def get(self, request):
        org = request.organization
        data = {"plan": selectors.entitlements(org), "meters": selectors.usage_summary(organization=org)}
        return Response(UsageOutput(data).data)
