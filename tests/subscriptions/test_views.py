"""Pricing and billing pages, the plan buttons, the portal, the usage API, roles and tenant isolation."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.capabilities import Role
from subscriptions.models import Invoice, Subscription
from subscriptions.services import usage_commit, usage_reserve
from tests.subscriptions.factories import put_on_plan

pytestmark = pytest.mark.django_db


def test_pricing_page_is_public_and_compares_every_plan(client):
    page = client.get(reverse("subscriptions:pricing")).content.decode()
    for name in ("Free", "Starter", "Pro", "Enterprise", "Compare plans", "5,000 images / month"):
        assert name in page
    assert "Start 14-day trial" in page and reverse("account_signup") in page
    yearly = client.get(reverse("subscriptions:pricing") + "?interval=year").content.decode()
    assert "£1,990" in yearly and "/ year" in yearly


def test_without_stripe_buttons_are_disabled_with_an_explanation(owner_client, settings):
    settings.STRIPE_SECRET_KEY = ""
    page = owner_client.get(reverse("subscriptions:pricing")).content.decode()
    assert "Payments are not enabled on this installation" in page
    assert 'data-testid="choose-pro"' not in page and "disabled" in page
    billing_page = owner_client.get(reverse("subscriptions:index")).content.decode()
    assert "STRIPE_SECRET_KEY" in billing_page and 'data-testid="plan-name">Free<' in billing_page
    assert "No invoices yet" in billing_page
    resp = owner_client.post(reverse("subscriptions:choose"), {"plan": "pro", "interval": "month"}, follow=True)
    assert "Payments are not enabled" in resp.content.decode()


def test_choose_redirects_to_stripe_checkout(owner_client, fake_stripe):
    resp = owner_client.post(reverse("subscriptions:choose"), {"plan": "starter", "interval": "month"})
    assert resp.status_code == 302 and resp["Location"].startswith("https://fake-stripe.test/checkout/")
    session = next(iter(fake_stripe.sessions.values()))
    assert session["success_url"] == "http://testserver/billing/checkout/return/?result=success"


def test_choose_with_a_live_subscription_changes_plan(owner_client, fake_stripe, subscribed, org):
    resp = owner_client.post(reverse("subscriptions:choose"), {"plan": "enterprise", "interval": "month"},
                             follow=True)
    assert "Plan changed to Enterprise" in resp.content.decode()
    assert Subscription.objects.get(organization=org).plan.code == "enterprise"
    page = owner_client.get(reverse("subscriptions:pricing")).content.decode()
    assert "Switch to Pro" in page and "Downgrade to Free" in page


def test_billing_page_shows_plan_meters_seats_and_invoices(owner_client, fake_stripe, subscribed, org, other_org):
    usage_commit(reservation=usage_reserve(organization=org, meter="images", quantity=7))
    Invoice.objects.create(organization=org, stripe_id="in_1", number="LUMEN-0001", status="paid",
                           amount_paid=19900, invoice_pdf="https://fake-stripe.test/in_1/pdf",
                           created_at=timezone.now())
    Invoice.objects.create(organization=other_org, stripe_id="in_2", number="OTHER-9", status="paid",
                           created_at=timezone.now())
    page = owner_client.get(reverse("subscriptions:index")).content.decode()
    assert 'data-testid="plan-name">Pro<' in page and "Renews on" in page
    assert 'data-testid="used-images">7<' in page and "5,000 included" in page
    assert "1 of 20 used" in page and "LUMEN-0001" in page and "£199.00" in page
    assert "https://fake-stripe.test/in_1/pdf" in page and "OTHER-9" not in page
    assert "Manage payment method" in page and "Cancel subscription" in page


def test_portal_and_cancel_buttons(owner_client, fake_stripe, subscribed):
    resp = owner_client.post(reverse("subscriptions:portal"))
    assert resp.status_code == 302 and "/portal/bps_" in resp["Location"]
    resp = owner_client.post(reverse("subscriptions:cancel"), follow=True)
    assert "Your subscription ends on" in resp.content.decode() and "Keep my subscription" in resp.content.decode()


def test_roles_without_billing_see_plan_and_usage_only(client, org, make_member, fake_stripe):
    clinician = make_member(org, Role.CLINICIAN)
    client.force_login(clinician)
    page = client.get(reverse("subscriptions:index")).content.decode()
    assert "Usage this month" in page and "invoices-heading" not in page and "Manage payment method" not in page
    assert client.post(reverse("subscriptions:choose"), {"plan": "pro", "interval": "month"}).status_code == 403
    assert client.post(reverse("subscriptions:portal")).status_code == 403
    assert client.post(reverse("subscriptions:cancel")).status_code == 403
    billing_member = make_member(org, Role.BILLING)
    client.force_login(billing_member)
    assert "invoices-heading" in client.get(reverse("subscriptions:index")).content.decode()


def test_usage_page_lists_this_organisations_ledger_only(owner_client, org, other_org):
    usage_commit(reservation=usage_reserve(organization=org, meter="texts", quantity=4, job_ref="sentiment.job:1"))
    usage_reserve(organization=other_org, meter="texts", quantity=9, job_ref="sentiment.job:999")
    page = owner_client.get(reverse("subscriptions:usage")).content.decode()
    assert "sentiment.job:1<" in page and "sentiment.job:999" not in page


def test_usage_api_returns_every_meter(client, org, other_org, api_key_for):
    put_on_plan(org, "starter")
    usage_commit(reservation=usage_reserve(organization=org, meter="images", quantity=3))
    usage_reserve(organization=org, meter="images", quantity=2)
    usage_reserve(organization=other_org, meter="images", quantity=40)
    resp = client.get("/api/v1/usage/", HTTP_AUTHORIZATION=f"Api-Key {api_key_for(org, scope='read')}")
    assert resp.status_code == 200
    body = resp.json()
    images = next(m for m in body["meters"] if m["meter"] == "images")
    assert (images["used"], images["pending"], images["included"], images["remaining"]) == (3, 2, 500, 495)
    assert {m["meter"] for m in body["meters"]} == {"images", "texts"}
    assert images["period_end"].endswith("-01") and body["plan"]["code"] == "starter"
    assert client.get("/api/v1/usage/").status_code in (401, 403)


def test_quota_error_maps_to_402_in_the_api(rf, org):
    from accounts.api_errors import api_exception_handler
    from subscriptions.exceptions import QuotaExceeded

    resp = api_exception_handler(QuotaExceeded("Image quota reached", details={"remaining": 0}), {})
    assert resp.status_code == 402
    assert resp.data == {"error": {"code": "quota_exceeded", "message": "Image quota reached",
                                   "details": {"remaining": 0}}}


def test_checkout_return_messages(owner_client):
    resp = owner_client.get(reverse("subscriptions:checkout-return") + "?result=cancel", follow=True)
    assert "Checkout was cancelled" in resp.content.decode()
