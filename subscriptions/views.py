"""Pricing (public), billing overview, usage, plan choice, portal, cancellation and the Stripe webhook."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts.capabilities import Capability
from accounts.exceptions import ServiceError
from accounts.permissions import OrganizationRequiredMixin, request_can
from subscriptions import billing, selectors, webhooks
from subscriptions.forms import ChoosePlanForm
from subscriptions.models import Interval, SubscriptionStatus

INTERVAL_MONTHS = {Interval.MONTH: 1, Interval.QUARTER: 3, Interval.YEAR: 12}


def _plan_actions(request, plans, interval: str) -> list[dict]:
    """One card per plan with the button the current visitor may use, or why it is disabled."""
    sub = selectors.subscription_get(organization=request.organization) if getattr(
        request, "organization", None) else None
    current_code = selectors.entitlements_for_subscription(sub).plan_code if request.organization else None
    live = bool(sub and sub.stripe_subscription_id and sub.status in selectors.LIVE_STRIPE_STATUSES)
    can_manage = request_can(request, Capability.BILLING_MANAGE)
    cards = []
    for plan in plans:
        price = plan.price_for(interval)
        card = {"plan": plan, "price": price, "per_month": price / INTERVAL_MONTHS[Interval(interval)],
                "is_current": plan.code == current_code and (plan.is_free or sub.interval == interval),
                "action": None, "label": "", "disabled_reason": ""}
        if not request.user.is_authenticated:
            card["link"] = reverse("account_signup")
            card["label"] = "Start free" if plan.is_free else f"Start {plan.trial_days}-day trial"
        elif request.organization is None:
            card["link"] = reverse("accounts:organization-create")
            card["label"] = "Create an organisation"
        elif card["is_current"]:
            card["label"] = "Your current plan"
            card["disabled_reason"] = "You are on this plan."
        elif not can_manage:
            card["label"] = "Choose"
            card["disabled_reason"] = "Only owners, admins and billing members can change the plan."
        elif plan.is_free:
            card["label"] = "Downgrade to Free"
            if live:
                card["action"] = "choose"
            else:
                card["disabled_reason"] = "Your organisation is already on Free limits."
        elif not billing.plan_purchasable(plan, interval):
            card["label"] = f"Choose {plan.name}"
            card["disabled_reason"] = ("Payments are not enabled on this installation yet." if not
                                       billing.stripe_enabled() else
                                       f"This plan has no Stripe price for {Interval(interval).label.lower()} billing.")
        else:
            card["action"] = "choose"
            trial = plan.trial_days and not (sub and sub.trial_used) and not live
            card["label"] = (f"Switch to {plan.name}" if live else
                             f"Start {plan.trial_days}-day trial" if trial else f"Choose {plan.name}")
        cards.append(card)
    return cards


def pricing(request: HttpRequest) -> HttpResponse:
    interval = request.GET.get("interval", Interval.MONTH)
    if interval not in Interval.values:
        interval = Interval.MONTH
    plans = list(selectors.plan_list())
    return render(request, "subscriptions/pricing.html", {
        "cards": _plan_actions(request, plans, interval), "interval": interval,
        "intervals": Interval.choices, "stripe_enabled": billing.stripe_enabled(),
    })


def _billing_context(request) -> dict:
    org = request.organization
    sub = selectors.subscription_get(organization=org)
    ent = selectors.entitlements_for_subscription(sub)
    live = bool(sub and sub.stripe_subscription_id and sub.status in selectors.LIVE_STRIPE_STATUSES)
    seats_used = selectors.seats_used(organization=org)
    return {
        "subscription": sub, "ent": ent, "live": live, "meters": selectors.usage_summary(organization=org),
        "seats_used": seats_used, "seats_left": ent.seats - seats_used,
        "seats_percent": min(100, round(100 * seats_used / max(ent.seats, 1))),
        "stripe_enabled": billing.stripe_enabled(),
        "can_view_billing": request_can(request, Capability.BILLING_VIEW),
        "can_manage": request_can(request, Capability.BILLING_MANAGE),
        "grace_ends": selectors.past_due_grace_ends(sub) if sub else None,
        "paid_plan_name": sub.plan.name if sub else "Free",
        "is_cancelled": bool(sub and sub.status == SubscriptionStatus.CANCELED),
    }


class BillingView(OrganizationRequiredMixin, View):
    """The organisation's billing page. Members without billing rights see the plan and usage only."""

    required_capability = Capability.ORG_VIEW

    def get(self, request):
        ctx = _billing_context(request)
        if ctx["can_view_billing"]:
            ctx["invoices"] = selectors.invoice_list(organization=request.organization)[:24]
        return render(request, "subscriptions/index.html", ctx)


index = BillingView.as_view()


class UsageView(OrganizationRequiredMixin, View):
    required_capability = Capability.ORG_VIEW
    page_size = 25

    def get(self, request):
        ctx = _billing_context(request)
        entries = selectors.usage_entry_list(organization=request.organization)
        ctx["page"] = Paginator(entries, self.page_size).get_page(request.GET.get("page"))
        return render(request, "subscriptions/usage.html", ctx)


def _return_url(request, name: str) -> str:
    return request.build_absolute_uri(reverse(name))


def _handle_service(request, fn, **kwargs):
    try:
        return fn(**kwargs), None
    except ServiceError as exc:
        if exc.status == 404:
            raise Http404(exc.message) from exc
        messages.error(request, exc.message)
        return None, exc


class ChoosePlanView(OrganizationRequiredMixin, View):
    """Pricing page buttons: a first paid plan goes to Stripe Checkout; a live subscription is changed in place
    (prorated); Free schedules cancellation at the period end."""

    required_capability = Capability.BILLING_MANAGE

    def post(self, request):
        form = ChoosePlanForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Choose one of the plans and a billing interval.")
            return redirect("subscriptions:pricing")
        plan_code, interval = form.cleaned_data["plan"], form.cleaned_data["interval"]
        sub = selectors.subscription_get(organization=request.organization)
        live = bool(sub and sub.stripe_subscription_id and sub.status in selectors.LIVE_STRIPE_STATUSES)
        if live:
            result, err = _handle_service(request, billing.plan_change, organization=request.organization,
                                          actor=request.user, plan_code=plan_code, interval=interval)
            if err is None:
                messages.success(request, "Your organisation moves to Free at the end of the paid period."
                                 if plan_code == selectors.FREE_PLAN_CODE else
                                 f"Plan changed to {result.plan.name}. The difference is prorated on your next "
                                 "invoice.")
            return redirect("subscriptions:index" if err is None else "subscriptions:pricing")
        success = _return_url(request, "subscriptions:checkout-return") + "?result=success"
        cancel = _return_url(request, "subscriptions:checkout-return") + "?result=cancel"
        url, err = _handle_service(request, billing.checkout_start, organization=request.organization,
                                   actor=request.user, plan_code=plan_code, interval=interval,
                                   success_url=success, cancel_url=cancel)
        if err is not None:
            return redirect("subscriptions:pricing")
        return redirect(url)


def checkout_return(request: HttpRequest) -> HttpResponse:
    if request.GET.get("result") == "success":
        messages.success(request, "Thank you! Your subscription is confirmed as soon as Stripe tells us, "
                                  "usually within seconds.")
    else:
        messages.info(request, "Checkout was cancelled; nothing was charged.")
    return redirect("subscriptions:index")


class PortalView(OrganizationRequiredMixin, View):
    required_capability = Capability.BILLING_MANAGE

    def post(self, request):
        url, err = _handle_service(request, billing.portal_open, organization=request.organization,
                                   actor=request.user, return_url=_return_url(request, "subscriptions:index"))
        return redirect(url if err is None else "subscriptions:index")


class CancelView(OrganizationRequiredMixin, View):
    required_capability = Capability.BILLING_MANAGE
    resume = False

    def post(self, request):
        fn = billing.subscription_resume if self.resume else billing.subscription_cancel
        sub, err = _handle_service(request, fn, organization=request.organization, actor=request.user)
        if err is None:
            if self.resume:
                messages.success(request, "Cancellation undone. Your plan renews as usual.")
            else:
                end = f" on {sub.current_period_end:%-d %B %Y}" if sub.current_period_end else ""
                messages.success(request, f"Your subscription ends{end}. Until then nothing changes; "
                                          "afterwards the Free plan's limits apply and no data is deleted.")
        return redirect("subscriptions:index")


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Verify, store by event id, answer at once; a task handles the event exactly once."""
    from subscriptions import stripe_gateway

    if not settings.STRIPE_WEBHOOK_SECRET:
        return JsonResponse({"error": "Webhooks are not configured (STRIPE_WEBHOOK_SECRET is empty)."}, status=400)
    try:
        event = stripe_gateway.webhook_event_construct(payload=request.body,
                                                       signature=request.headers.get("Stripe-Signature", ""))
    except stripe_gateway.WebhookSignatureInvalid:
        return JsonResponse({"error": "Invalid signature."}, status=400)
    _, created = webhooks.stripe_event_store(event=event)
    return JsonResponse({"received": True, "duplicate": not created})
