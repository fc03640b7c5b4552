"""The only module that imports `stripe`. Everything else gets plain dataclasses and our own exceptions.

The client is built from settings: the secret key, the pinned API version, an optional API base (a local fake
Stripe in the browser tests) and an optional HTTP client class (a fake in unit tests). SDK 16 objects are not
dicts, so each response is turned into a plain dict with `to_dict()` once and parsed from there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import stripe
from django.conf import settings
from django.utils.module_loading import import_string

LIVE_STATUSES = frozenset({"trialing", "active", "past_due", "unpaid", "paused"})


class GatewayError(Exception):
    """Stripe refused or could not be reached. `message` is safe to show to the user."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class WebhookSignatureInvalid(Exception):
    pass


@dataclass(frozen=True)
class SubscriptionItem:
    id: str
    price_id: str


@dataclass(frozen=True)
class SubscriptionState:
    id: str
    customer_id: str
    status: str
    created: datetime
    items: tuple[SubscriptionItem, ...]
    current_period_end: datetime | None
    trial_end: datetime | None
    cancel_at_period_end: bool
    metadata: dict = field(default_factory=dict)

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES


@dataclass(frozen=True)
class InvoiceState:
    id: str
    customer_id: str
    subscription_id: str
    number: str
    status: str
    currency: str
    amount_due: int
    amount_paid: int
    hosted_invoice_url: str
    invoice_pdf: str
    period_start: datetime | None
    period_end: datetime | None
    created: datetime


@dataclass(frozen=True)
class CheckoutSessionState:
    id: str
    url: str
    customer_id: str
    subscription_id: str
    client_reference_id: str
    status: str
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookEvent:
    id: str
    type: str
    created: datetime
    livemode: bool
    data_object: dict
    payload: dict


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def _id(value: Any) -> str:
    """An expandable field: an id string or an expanded object."""
    if isinstance(value, dict):
        return value.get("id") or ""
    return value or ""


@lru_cache(maxsize=4)
def _client(api_key: str, api_version: str, api_base: str, http_client_path: str, retries: int) -> Any:
    http_client = import_string(http_client_path)() if http_client_path else None
    base_addresses = {"api": api_base, "meter_events": api_base} if api_base else None
    return stripe.StripeClient(api_key, stripe_version=api_version, base_addresses=base_addresses,
                               http_client=http_client, max_network_retries=retries)


def client() -> Any:
    if not settings.STRIPE_SECRET_KEY:
        raise GatewayError("Payments are not enabled on this installation (no Stripe key is configured).")
    return _client(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_VERSION, settings.STRIPE_API_BASE,
                   settings.STRIPE_HTTP_CLIENT, settings.STRIPE_MAX_NETWORK_RETRIES)


def _call(fn, *args, **kwargs) -> dict:
    try:
        return fn(*args, **kwargs).to_dict()
    except stripe.APIConnectionError as exc:
        raise GatewayError("Stripe could not be reached. Try again in a minute.", retryable=True) from exc
    except stripe.RateLimitError as exc:
        raise GatewayError("Stripe is busy. Try again in a minute.", retryable=True) from exc
    except stripe.StripeError as exc:
        retryable = (exc.http_status or 0) >= 500
        raise GatewayError(exc.user_message or "Stripe refused the request.", retryable=retryable) from exc


def _subscription(data: dict) -> SubscriptionState:
    items = (data.get("items") or {}).get("data") or []
    # Since API 2025-03-31 the billing period lives on the items; the licensed base item ends last.
    period_ends = [i.get("current_period_end") for i in items if i.get("current_period_end")]
    period_end = max(period_ends) if period_ends else data.get("current_period_end")
    return SubscriptionState(
        id=data["id"], customer_id=_id(data.get("customer")), status=data.get("status") or "",
        created=_ts(data.get("created")) or datetime.now(tz=UTC),
        items=tuple(SubscriptionItem(id=i["id"], price_id=_id(i.get("price"))) for i in items),
        current_period_end=_ts(period_end), trial_end=_ts(data.get("trial_end")),
        cancel_at_period_end=bool(data.get("cancel_at_period_end")), metadata=dict(data.get("metadata") or {}),
    )


def _invoice(data: dict) -> InvoiceState:
    parent = data.get("parent") or {}
    subscription_id = _id((parent.get("subscription_details") or {}).get("subscription"))
    return InvoiceState(
        id=data["id"], customer_id=_id(data.get("customer")), subscription_id=subscription_id,
        number=data.get("number") or "", status=data.get("status") or "", currency=data.get("currency") or "gbp",
        amount_due=int(data.get("amount_due") or 0), amount_paid=int(data.get("amount_paid") or 0),
        hosted_invoice_url=data.get("hosted_invoice_url") or "", invoice_pdf=data.get("invoice_pdf") or "",
        period_start=_ts(data.get("period_start")), period_end=_ts(data.get("period_end")),
        created=_ts(data.get("created")) or datetime.now(tz=UTC),
    )


def _checkout_session(data: dict) -> CheckoutSessionState:
    return CheckoutSessionState(
        id=data["id"], url=data.get("url") or "", customer_id=_id(data.get("customer")),
        subscription_id=_id(data.get("subscription")), client_reference_id=data.get("client_reference_id") or "",
        status=data.get("status") or "", metadata=dict(data.get("metadata") or {}),
    )


def customer_create(*, email: str, name: str, organization_id: int) -> str:
    data = _call(client().v1.customers.create,
                 {"email": email, "name": name, "metadata": {"organization_id": str(organization_id)}},
                 {"idempotency_key": f"lumen-customer-org-{organization_id}"})
    return data["id"]


def checkout_session_create(*, customer_id: str, line_items: list[dict], trial_days: int, metadata: dict,
                            client_reference_id: str, success_url: str, cancel_url: str) -> CheckoutSessionState:
    subscription_data: dict[str, Any] = {"metadata": metadata, "billing_mode": {"type": "flexible"}}
    if trial_days:
        subscription_data["trial_period_days"] = trial_days
    data = _call(client().v1.checkout.sessions.create, {
        "mode": "subscription", "customer": customer_id, "line_items": line_items,
        "client_reference_id": client_reference_id, "metadata": metadata, "subscription_data": subscription_data,
        "success_url": success_url, "cancel_url": cancel_url,
    })
    return _checkout_session(data)


def checkout_session_retrieve(session_id: str) -> CheckoutSessionState:
    return _checkout_session(_call(client().v1.checkout.sessions.retrieve, session_id))


def portal_session_create(*, customer_id: str, return_url: str) -> str:
    data = _call(client().v1.billing_portal.sessions.create, {"customer": customer_id, "return_url": return_url})
    return data["url"]


def subscription_retrieve(subscription_id: str) -> SubscriptionState:
    return _subscription(_call(client().v1.subscriptions.retrieve, subscription_id))


def subscription_update(subscription_id: str, *, items: list[dict] | None = None,
                        cancel_at_period_end: bool | None = None, metadata: dict | None = None) -> SubscriptionState:
    params: dict[str, Any] = {}
    if items is not None:
        params["items"] = items
        params["proration_behavior"] = "create_prorations"
    if cancel_at_period_end is not None:
        params["cancel_at_period_end"] = cancel_at_period_end
    if metadata is not None:
        params["metadata"] = metadata
    return _subscription(_call(client().v1.subscriptions.update, subscription_id, params))


def invoice_retrieve(invoice_id: str) -> InvoiceState:
    return _invoice(_call(client().v1.invoices.retrieve, invoice_id))


def meter_event_create(*, event_name: str, customer_id: str, value: int, identifier: str,
                       timestamp: datetime) -> None:
    """Report usage to a Billing Meter. Stripe de-duplicates on `identifier`, so a retry never bills twice."""
    _call(client().v1.billing.meter_events.create, {
        "event_name": event_name, "identifier": identifier, "timestamp": int(timestamp.timestamp()),
        "payload": {"stripe_customer_id": customer_id, "value": str(value)},
    })


def webhook_event_construct(*, payload: bytes, signature: str) -> WebhookEvent:
    """Verify the Stripe-Signature header against the endpoint secret and parse the event."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise WebhookSignatureInvalid("No webhook secret is configured.")
    try:
        stripe.Webhook.construct_event(payload, signature, secret)
    except (stripe.SignatureVerificationError, ValueError) as exc:
        raise WebhookSignatureInvalid(str(exc)) from exc
    raw = json.loads(payload)  # verified above; keep Stripe's own JSON for the event store
    return WebhookEvent(id=raw["id"], type=raw.get("type", ""), created=_ts(raw.get("created")) or datetime.now(UTC),
                        livemode=bool(raw.get("livemode")), data_object=(raw.get("data") or {}).get("object") or {},
                        payload=raw)
