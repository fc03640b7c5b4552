"""Alert pages: rules (create, pause, delete, send a test), alert history and one alert with its documents."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views import View

from accounts.capabilities import Capability
from accounts.exceptions import ServiceError
from accounts.permissions import OrganizationRequiredMixin, request_can
from sentiment import alerts, selectors
from sentiment.forms import AlertRuleForm
from sentiment.views import user_or_none


class AlertsView(OrganizationRequiredMixin, View):
    capabilities = {"GET": Capability.SENTIMENT_VIEW, "POST": Capability.SENTIMENT_MANAGE}

    def get(self, request, form=None):
        org = request.organization
        watchlists = list(selectors.watchlist_list(organization=org))
        initial = {}
        if request.GET.get("watchlist", "").isdigit():
            initial["watchlist"] = int(request.GET["watchlist"])
        page = Paginator(selectors.alert_list(organization=org), 20).get_page(request.GET.get("page"))
        return render(request, "sentiment/alerts.html", {
            "rules": selectors.alert_rule_list(organization=org), "page": page, "watchlists": watchlists,
            "form": form or AlertRuleForm(watchlists=watchlists, initial=initial),
            "can_manage": request_can(request, Capability.SENTIMENT_MANAGE)})

    def post(self, request):
        org = request.organization
        watchlists = list(selectors.watchlist_list(organization=org))
        form = AlertRuleForm(request.POST, watchlists=watchlists)
        if not form.is_valid():
            return self.get(request, form)
        data = dict(form.cleaned_data)
        watchlist = selectors.watchlist_get(organization=org, pk=data.pop("watchlist"))
        try:
            rule = alerts.alert_rule_create(organization=org, watchlist=watchlist, created_by=user_or_none(request),
                                            **data)
        except ServiceError as exc:
            form.add_error(None, exc.message)
            return self.get(request, form)
        messages.success(request, f"Alert rule '{rule.name}' created. It is checked whenever new documents are "
                         "scored; use 'Send test' to check the delivery.")
        return redirect("sentiment:rule-detail", pk=rule.pk)


class RuleDetailView(OrganizationRequiredMixin, View):
    required_capability = Capability.SENTIMENT_VIEW

    def get(self, request, pk):
        org = request.organization
        rule = selectors.alert_rule_get(organization=org, pk=pk)
        page = Paginator(selectors.alert_list(organization=org, rule=rule), 20).get_page(request.GET.get("page"))
        return render(request, "sentiment/rule_detail.html", {
            "rule": rule, "page": page, "deliveries": selectors.delivery_list(organization=org, rule=rule),
            "can_manage": request_can(request, Capability.SENTIMENT_MANAGE),
            "signature_header": alerts.SIGNATURE_HEADER, "timestamp_header": alerts.TIMESTAMP_HEADER})


class RuleActionView(OrganizationRequiredMixin, View):
    required_capability = Capability.SENTIMENT_MANAGE
    action = ""

    def post(self, request, pk):
        rule = selectors.alert_rule_get(organization=request.organization, pk=pk)
        if self.action == "test":
            try:
                deliveries = alerts.alert_rule_send_test(rule=rule, actor=user_or_none(request))
            except ServiceError as exc:
                messages.error(request, exc.message)
                return redirect("sentiment:rule-detail", pk=rule.pk)
            for d in deliveries:
                level = messages.success if d.ok else messages.error
                level(request, f"Test {d.get_channel_display().lower()}: {'delivered' if d.ok else 'failed'}, "
                      f"{d.detail}")
        elif self.action == "toggle":
            alerts.alert_rule_toggle(rule=rule, is_active=not rule.is_active)
            messages.success(request, f"Rule '{rule.name}' {'resumed' if rule.is_active else 'paused'}.")
        elif self.action == "delete":
            alerts.alert_rule_delete(rule=rule, actor=user_or_none(request))
            messages.success(request, f"Rule '{rule.name}' deleted with its history.")
            return redirect("sentiment:alerts")
        return redirect("sentiment:rule-detail", pk=rule.pk)


class AlertDetailView(OrganizationRequiredMixin, View):
    required_capability = Capability.SENTIMENT_VIEW

    def get(self, request, pk):
        org = request.organization
        alert = selectors.alert_get(organization=org, pk=pk)
        return render(request, "sentiment/alert_detail.html", {
            "alert": alert, "documents": selectors.alert_documents(organization=org, alert=alert)})
