"""Fixtures for billing tests: Stripe settings pointing at an in-memory fake, signed webhook posting."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from tests.subscriptions.fake_stripe import PRICE_IDS, WEBHOOK_SECRET, FakeHTTPClient, FakeStripe, sign


@pytest.fixture
def stripe_settings(settings):
    settings.STRIPE_SECRET_KEY = "sk_test_fake"
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_HTTP_CLIENT = "tests.subscriptions.fake_stripe.FakeHTTPClient"
    settings.STRIPE_API_BASE = ""
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    settings.STRIPE_PRICE_IDS = dict(PRICE_IDS)
    return settings


@pytest.fixture
def fake_stripe(stripe_settings):
    from subscriptions import stripe_gateway

    stripe_gateway._client.cache_clear()
    backend = FakeStripe()
    FakeHTTPClient.backend = backend
    yield backend
    FakeHTTPClient.backend = None
    stripe_gateway._client.cache_clear()


@pytest.fixture
def post_event(client, django_capture_on_commit_callbacks):
    """Sign an event like Stripe does, post it to the webhook and run the queued task (eager Celery)."""

    def post(event: dict, *, secret: str = WEBHOOK_SECRET, signature: str | None = None):
        payload = json.dumps(event)
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(reverse("subscriptions:stripe-webhook"), data=payload, content_type="application/json",
                               HTTP_STRIPE_SIGNATURE=signature if signature is not None else sign(payload, secret))

    return post


@pytest.fixture
def subscribed(fake_stripe, org, owner):
    """`org` with a live Stripe subscription on Pro monthly, as a completed checkout leaves it."""
    from subscriptions.billing import subscription_apply_state
    from subscriptions.services import subscription_ensure
    from subscriptions.stripe_gateway import subscription_retrieve

    cus = fake_stripe._route("POST", "/v1/customers",
                             {"email": owner.email, "metadata": {"organization_id": str(org.pk)}})
    sub = fake_stripe.subscription_create(customer=cus["id"], prices=[
        "price_pro_month", "price_pro_overage_images", "price_pro_overage_texts"],
        metadata={"organization_id": str(org.pk)})
    row = subscription_ensure(organization=org)
    row.stripe_customer_id = cus["id"]
    row.save()
    subscription_apply_state(organization=org, state=subscription_retrieve(sub["id"]))
    return sub
