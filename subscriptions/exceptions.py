"""Typed refusals of the subscriptions app. All are `ServiceError`s, so the API maps them once.

Quota, seat and billing refusals answer 402 Payment Required rather than 429: they are not cleared by retrying
with back-off (which clients do on 429) but by upgrading, paying, or waiting for the next quota month.
"""

from __future__ import annotations

from accounts.exceptions import ServiceError


class QuotaExceeded(ServiceError):
    """A meter's monthly allowance is used up. `details`: meter, included, used, remaining, requested,
    period_end (ISO date), plan, upgrade_url."""

    code = "quota_exceeded"
    status = 402


class SeatLimitReached(ServiceError):
    """Adding members, or moving to a plan with fewer seats, would exceed the plan's seats."""

    code = "seat_limit_reached"
    status = 402


class BillingBlocked(ServiceError):
    """Payment is overdue beyond the grace period (or unpaid): reading works, new analyses do not."""

    code = "billing_past_due"
    status = 402


class BillingUnavailable(ServiceError):
    """Payments are not configured, or Stripe could not complete the request."""

    code = "billing_unavailable"
    status = 503


class ApiAccessNotIncluded(ServiceError):
    """The organisation's plan does not include the REST API for API keys."""

    code = "api_access_not_included"
    status = 402
