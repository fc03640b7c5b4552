from django.contrib import admin

from subscriptions.billing import OVERAGE_MAX_ATTEMPTS
from subscriptions.models import Invoice, OverageReport, Plan, StripeEvent, Subscription, UsageEntry


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "price_month", "price_quarter", "price_year", "images_per_month",
                    "texts_per_month", "seats", "api_access", "overage_allowed", "is_public")
    ordering = ("sort_order",)


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ("organization", "plan", "interval", "status", "current_period_end", "cancel_at_period_end")
    list_filter = ("status", "plan")
    search_fields = ("organization__name", "stripe_customer_id", "stripe_subscription_id")
    readonly_fields = ("stripe_customer_id", "stripe_subscription_id", "stripe_created_at", "updated_at")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Ledger, events and reports are append-only records: viewable, never edited by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        manager = self.model.objects
        # Operators see every organisation; the scope guard is for tenant-facing code.
        return manager.with_scopes_disabled().all() if hasattr(manager, "with_scopes_disabled") else manager.all()


@admin.register(UsageEntry)
class UsageEntryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "organization", "meter", "state", "quantity", "overage_quantity", "period", "job_ref")
    list_filter = ("meter", "state", "period")


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "stripe_id", "type", "processed_at", "attempts", "last_error")
    list_filter = ("type",)
    search_fields = ("stripe_id",)


class OverageReportStateFilter(admin.SimpleListFilter):
    """Abandoned reports (too old for Stripe, or out of attempts) are never sent again: operators bill them."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("queued", "Queued"), ("sent", "Sent"), ("abandoned", "Abandoned: bill manually")]

    def queryset(self, request, queryset):
        if self.value() == "queued":
            return queryset.filter(sent_at=None, attempts__lt=OVERAGE_MAX_ATTEMPTS)
        if self.value() == "sent":
            return queryset.exclude(sent_at=None)
        if self.value() == "abandoned":
            return queryset.filter(sent_at=None, attempts__gte=OVERAGE_MAX_ATTEMPTS)
        return queryset


@admin.register(OverageReport)
class OverageReportAdmin(ReadOnlyAdmin):
    list_display = ("occurred_at", "organization", "event_name", "value", "identifier", "state", "sent_at",
                    "attempts", "last_error")
    list_filter = (OverageReportStateFilter,)
    search_fields = ("identifier", "stripe_customer_id")

    @admin.display(description="state")
    def state(self, obj: OverageReport) -> str:
        if obj.sent_at is not None:
            return "sent"
        return "abandoned: bill manually" if obj.attempts >= OVERAGE_MAX_ATTEMPTS else "queued"


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "organization", "number", "status", "amount_due", "amount_paid", "currency")
