"""Browser tier: pricing page -> Stripe Checkout (a local fake Stripe) -> signed webhooks -> active plan ->
usage page, with the app talking to the fake over real HTTP through the Stripe SDK."""

from __future__ import annotations

import pytest

from accounts.capabilities import Role
from tests.subscriptions.fake_stripe import PRICE_IDS, WEBHOOK_SECRET, FakeStripeServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def catalogue(transactional_db):
    from subscriptions.services import plan_catalogue_seed

    plan_catalogue_seed()


@pytest.fixture
def owner_in_org(catalogue):
    from tests.accounts.factories import MembershipFactory, OrganizationFactory

    org = OrganizationFactory(name="Gamma Imaging")
    return org, MembershipFactory(organization=org, role=Role.OWNER).user


@pytest.fixture
def fake_stripe_server(live_server, settings):
    from subscriptions import stripe_gateway

    with FakeStripeServer(webhook_url=f"{live_server.url}/billing/webhooks/stripe/") as server:
        settings.STRIPE_SECRET_KEY = "sk_test_e2e"
        settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
        settings.STRIPE_API_BASE = server.url
        settings.STRIPE_HTTP_CLIENT = ""  # the SDK's own HTTP client, over the loopback
        settings.STRIPE_MAX_NETWORK_RETRIES = 0
        settings.STRIPE_PRICE_IDS = dict(PRICE_IDS)
        stripe_gateway._client.cache_clear()
        yield server
        stripe_gateway._client.cache_clear()


def test_pricing_checkout_webhook_active_plan_usage(page, login, owner_in_org, fake_stripe_server, screenshot):
    from subscriptions.models import StripeEvent, Subscription
    from subscriptions.services import usage_commit, usage_reserve

    org, owner = owner_in_org
    login(owner)

    # Pricing page: compare and choose Pro, monthly.
    page.goto("/billing/pricing/")
    assert page.locator(".plan-card").count() == 4
    assert page.locator("[data-plan=free] .badge").inner_text() == "Current"
    screenshot("billing-pricing")
    page.click("[data-testid=choose-pro]")

    # Stripe Checkout (the fake's hosted page): pay.
    page.wait_for_url(f"{fake_stripe_server.url}/checkout/**")
    assert "Fake Stripe Checkout" in page.content()
    page.click("text=Subscribe")

    # Back in the app after Stripe's webhooks were delivered, verified and handled.
    page.wait_for_url("**/billing/")
    assert [status for _, status in fake_stripe_server.deliveries] == [200, 200, 200]
    assert page.locator("[data-testid=plan-name]").inner_text() == "Pro"
    assert page.locator("[data-testid=plan-status]").inner_text() == "Trial"
    assert "Trial ends" in page.content() and "Thank you!" in page.content()
    assert page.locator("table.table tbody tr").count() == 1  # the trial's £0 invoice, with its PDF link
    assert page.locator("a:text('PDF')").get_attribute("href").startswith(fake_stripe_server.url)
    screenshot("billing-overview-pro")
    sub = Subscription.objects.get(organization=org)
    assert (sub.plan.code, sub.status) == ("pro", "trialing")
    assert StripeEvent.objects.filter(processed_at__isnull=False).count() == 3

    # Analyses count against the new plan; the usage page shows them.
    usage_commit(reservation=usage_reserve(organization=org, meter="images", quantity=12, job_ref="imaging.job:1"))
    usage_reserve(organization=org, meter="texts", quantity=40, job_ref="sentiment.job:7")
    page.click("nav.subnav >> text=Usage")
    page.wait_for_url("**/billing/usage/")
    assert page.locator("[data-testid=used-images]").inner_text() == "12"
    assert "5,000 included" in page.content() and "40 in progress" in page.content()
    assert page.locator("table.table tbody tr").count() == 2
    screenshot("billing-usage")


def test_without_stripe_the_billing_pages_explain_how_to_enable_payments(page, login, owner_in_org, settings,
                                                                        screenshot):
    settings.STRIPE_SECRET_KEY = ""
    org, owner = owner_in_org
    login(owner)
    page.goto("/billing/pricing/")
    assert page.locator("[data-plan=pro] button[disabled]").count() == 1
    assert "Payments are not enabled on this installation" in page.locator("[data-plan=pro]").inner_text()
    page.goto("/billing/")
    assert page.locator("[data-testid=plan-name]").inner_text() == "Free"
    assert "STRIPE_SECRET_KEY" in page.content() and "No invoices yet" in page.content()
    screenshot("billing-overview-free-no-stripe")
