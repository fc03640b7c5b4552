"""The Stripe gateway: built from settings, errors mapped to ours, webhook verification, and the import rule."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from subscriptions import stripe_gateway
from tests.subscriptions.fake_stripe import decode_form, sign

ROOT = Path(__file__).resolve().parents[2]


def test_client_uses_the_pinned_version_and_the_http_client_from_settings(fake_stripe):
    cus = stripe_gateway.customer_create(email="a@example.org", name="A", organization_id=7)
    request = fake_stripe.requests[-1]
    assert cus.startswith("cus_") and request["headers"]["Stripe-Version"] == "2026-10-28.endive"
    assert request["headers"]["Idempotency-Key"] == "lumen-customer-org-7"
    assert request["headers"]["Authorization"] == "Bearer sk_test_fake"
    assert request["params"]["metadata"] == {"organization_id": "7"}


def test_subscription_is_parsed_from_stripes_current_shape(fake_stripe):
    raw = fake_stripe.subscription_create(customer="cus_1", prices=["price_pro_year", "price_pro_overage_images"],
                                          trial_days=14, metadata={"organization_id": "3"})
    state = stripe_gateway.subscription_retrieve(raw["id"])
    assert state.status == "trialing" and state.customer_id == "cus_1" and state.is_live
    assert [i.price_id for i in state.items] == ["price_pro_year", "price_pro_overage_images"]
    assert int(state.current_period_end.timestamp()) == raw["items"]["data"][0]["current_period_end"]
    assert state.metadata == {"organization_id": "3"}


def test_stripe_errors_become_gateway_errors(fake_stripe):
    with pytest.raises(stripe_gateway.GatewayError, match="No such subscription") as exc:
        stripe_gateway.subscription_retrieve("sub_missing")
    assert exc.value.retryable is False
    fake_stripe.fail_next = [503]
    with pytest.raises(stripe_gateway.GatewayError) as exc:
        stripe_gateway.invoice_retrieve("in_1")
    assert exc.value.retryable is True


def test_no_key_means_no_client(settings):
    settings.STRIPE_SECRET_KEY = ""
    with pytest.raises(stripe_gateway.GatewayError, match="not enabled"):
        stripe_gateway.client()


def test_webhook_verification_accepts_only_our_signature(stripe_settings):
    payload = json.dumps({"id": "evt_1", "type": "invoice.paid", "created": 1, "livemode": False,
                          "data": {"object": {"id": "in_1", "object": "invoice"}}, "object": "event"})
    event = stripe_gateway.webhook_event_construct(payload=payload.encode(), signature=sign(payload))
    assert (event.id, event.type, event.data_object["id"]) == ("evt_1", "invoice.paid", "in_1")
    with pytest.raises(stripe_gateway.WebhookSignatureInvalid):
        stripe_gateway.webhook_event_construct(payload=payload.encode(), signature=sign(payload, "whsec_other"))
    with pytest.raises(stripe_gateway.WebhookSignatureInvalid):
        stripe_gateway.webhook_event_construct(payload=payload.encode() + b" ", signature=sign(payload))


def test_form_decoding_of_the_fake_matches_stripes_encoding():
    assert decode_form("items[0][id]=si_1&items[0][deleted]=true&items[1][price]=p&metadata[a]=b&x=1") == {
        "items": [{"id": "si_1", "deleted": "true"}, {"price": "p"}], "metadata": {"a": "b"}, "x": "1"}


def test_web_code_paths_do_not_import_stripe():
    """The web process stays import-light: only the gateway imports stripe, and only when it is used."""
    code = ("import django, sys; django.setup(); import config.urls, subscriptions.views, subscriptions.api, "
            "subscriptions.services, subscriptions.billing, subscriptions.tasks, subscriptions.context_processors; "
            "print('stripe' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={"DJANGO_SETTINGS_MODULE": "config.settings.test", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
