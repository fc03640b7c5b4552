"""Plans, each organisation's subscription, the usage ledger, Stripe events, invoices and overage reports."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.models import Organization, TenantModel


class Meter(models.TextChoices):
    IMAGES = "images", "Images"
    TEXTS = "texts", "Texts"


class Interval(models.TextChoices):
    MONTH = "month", "Monthly"
    QUARTER = "quarter", "Quarterly"
    YEAR = "year", "Yearly"


class Plan(models.Model):
    """A row of the plan catalogue (seeded by a data migration; operators edit it in the admin)."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=60)
    tagline = models.CharField(max_length=160, blank=True)
    sort_order = models.PositiveSmallIntegerField(default=0)
    is_public = models.BooleanField(default=True)
    currency = models.CharField(max_length=3, default="gbp")
    price_month = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    price_quarter = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    price_year = models.DecimalField(max_digits=10, decimal_places=2, default=Decimal("0"))
    trial_days = models.PositiveSmallIntegerField(default=0)
    images_per_month = models.PositiveIntegerField()
    texts_per_month = models.PositiveIntegerField()
    seats = models.PositiveIntegerField()
    api_access = models.BooleanField(default=False)
    max_concurrent_jobs = models.PositiveSmallIntegerField(default=1)
    overage_allowed = models.BooleanField(default=False)
    overage_price_image = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0"))
    overage_price_text = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal("0"))

    class Meta:
        ordering = ["sort_order"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_free(self) -> bool:
        return self.price_month == 0 and self.price_quarter == 0 and self.price_year == 0

    def price_for(self, interval: str) -> Decimal:
        return getattr(self, f"price_{interval}")


class SubscriptionStatus(models.TextChoices):
    """Our own `free` plus Stripe's subscription statuses, stored verbatim."""

    FREE = "free", "Free"
    TRIALING = "trialing", "Trial"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Payment overdue"
    UNPAID = "unpaid", "Unpaid"
    CANCELED = "canceled", "Cancelled"
    INCOMPLETE = "incomplete", "Awaiting first payment"
    INCOMPLETE_EXPIRED = "incomplete_expired", "Checkout expired"
    PAUSED = "paused", "Paused"


class Subscription(models.Model):
    """One per organisation: the plan it is on and the mirror of its Stripe subscription.
    Its row is the lock every quota decision takes, so reservations for one organisation are serialised."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="subscription")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    interval = models.CharField(max_length=8, choices=Interval.choices, default=Interval.MONTH)
    status = models.CharField(max_length=20, choices=SubscriptionStatus.choices, default=SubscriptionStatus.FREE)
    stripe_customer_id = models.CharField(max_length=64, blank=True, db_index=True)
    stripe_subscription_id = models.CharField(max_length=64, blank=True, db_index=True)
    stripe_created_at = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    trial_end = models.DateTimeField(null=True, blank=True)
    trial_used = models.BooleanField(default=False)
    cancel_at_period_end = models.BooleanField(default=False)
    past_due_since = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.organization_id}: {self.plan_id} ({self.status})"


class UsageState(models.TextChoices):
    RESERVED = "reserved", "Reserved"
    COMMITTED = "committed", "Committed"
    RELEASED = "released", "Released"


class UsageEntry(TenantModel):
    """Append-only usage ledger. A job reserves (one `reserved` row); settling appends a `committed` and/or a
    `released` row pointing at the reservation. Rows are never updated or deleted, so the amount counted against
    a quota is always sum(reserved) - sum(released) and the amount used is sum(committed)."""

    meter = models.CharField(max_length=8, choices=Meter.choices)
    state = models.CharField(max_length=10, choices=UsageState.choices)
    quantity = models.PositiveIntegerField()
    period = models.DateField(help_text="First day of the quota month (UTC).")
    reservation = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="settlements")
    job_ref = models.CharField(max_length=100, blank=True, help_text="What used it, e.g. imaging.analysisjob:42")
    overage_quantity = models.PositiveIntegerField(default=0, help_text="Units of a commit above the included amount")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "meter", "period", "state"], name="usage_org_meter_period")]
        constraints = [
            # At most one commit and one release per reservation: settling twice is impossible, not just avoided.
            models.UniqueConstraint(fields=["reservation", "state"], condition=Q(reservation__isnull=False),
                                    name="usage_one_settlement_per_state"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="usage_quantity_positive"),
            models.CheckConstraint(
                condition=(Q(state="reserved", reservation__isnull=True)
                           | Q(state__in=["committed", "released"], reservation__isnull=False)),
                name="usage_settlement_points_at_reservation"),
        ]

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise RuntimeError("Usage ledger rows are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise RuntimeError("Usage ledger rows are append-only.")

    def __str__(self) -> str:
        return f"{self.state} {self.quantity} {self.meter}"


class OverageReport(TenantModel):
    """Outbox of Billing Meter events: one per committed ledger row with overage. The identifier is derived from
    the ledger row, so resending after a timeout can never bill the same units twice."""

    entry = models.OneToOneField(UsageEntry, on_delete=models.PROTECT, related_name="overage_report")
    identifier = models.CharField(max_length=100, unique=True)
    event_name = models.CharField(max_length=100)
    stripe_customer_id = models.CharField(max_length=64)
    value = models.PositiveIntegerField()
    occurred_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["occurred_at"]


class StripeEvent(models.Model):
    """Every webhook event Stripe sent us, stored by its unique id before anything else happens."""

    stripe_id = models.CharField(max_length=64, unique=True)
    type = models.CharField(max_length=80, db_index=True)
    livemode = models.BooleanField(default=False)
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.stripe_id} {self.type}"


class Invoice(TenantModel):
    """Mirror of a Stripe invoice, kept fresh by webhooks so the billing page never calls Stripe."""

    stripe_id = models.CharField(max_length=64, unique=True)
    number = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=20, blank=True)
    currency = models.CharField(max_length=3, default="gbp")
    amount_due = models.IntegerField(default=0, help_text="Minor units (pence)")
    amount_paid = models.IntegerField(default=0, help_text="Minor units (pence)")
    hosted_invoice_url = models.URLField(max_length=500, blank=True)
    invoice_pdf = models.URLField(max_length=500, blank=True)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.number or self.stripe_id
