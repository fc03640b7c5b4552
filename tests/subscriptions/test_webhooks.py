"""Stripe webhooks through the real signature check: storage by id, exactly-once handling, any arrival order."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.capabilities import Role
from accounts.models import AuditEvent
from subscriptions import billing
from subscriptions.exceptions import BillingBlocked
from subscriptions.models import Invoice, StripeEvent, Subscription
from subscriptions.selectors import entitlements
from subscriptions.services import usage_reserve
from subscriptions.tasks import stripe_events_process_pending
from tests.subscriptions.fake_stripe import WEBHOOK_SECRET, sign

pytestmark = pytest.mark.django_db


def _checkout(org, owner, fake_stripe, plan="pro", interval="month"):
    url = billing.checkout_start(organization=org, actor=owner, plan_code=plan, interval=interval,
                                 success_url="http://testserver/ok", cancel_url="http://testserver/no")
    return url.rsplit("/", 1)[1]


def _retrieves(fake_stripe) -> int:
    return sum(1 for r in fake_stripe.requests if r["method"] == "GET" and r["path"].startswith("/v1/subscriptions"))


def test_bad_missing_or_foreign_signatures_are_rejected_with_400(post_event, fake_stripe, client):
    event = fake_stripe.event("invoice.paid", {"id": "in_x", "object": "invoice"})
    assert post_event(event, secret="whsec_someone_else").status_code == 400
    assert post_event(event, signature="").status_code == 400
    assert post_event(event, signature="t=1,v1=deadbeef").status_code == 400
    old = sign('{"id": "evt_old"}', timestamp=int(time.time()) - 3600)  # outside Stripe's 5-minute tolerance
    assert post_event({"id": "evt_old"}, signature=old).status_code == 400
    assert not StripeEvent.objects.exists()


def test_webhook_refuses_when_no_secret_is_configured(client, settings, fake_stripe):
    """A correctly signed event is refused once the secret is cleared: only the no-secret check can refuse it."""
    payload = json.dumps(fake_stripe.event("customer.created", {"id": "cus_1", "object": "customer"}))
    signature = sign(payload, WEBHOOK_SECRET)
    url = reverse("subscriptions:stripe-webhook")
    settings.STRIPE_WEBHOOK_SECRET = ""
    resp = client.post(url, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature)
    assert resp.status_code == 400
    assert resp.json() == {"error": "Webhooks are not configured (STRIPE_WEBHOOK_SECRET is empty)."}
    assert not StripeEvent.objects.exists()
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET  # the same request is valid with the secret set
    resp = client.post(url, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature)
    assert resp.status_code == 200 and resp.json() == {"received": True, "duplicate": False}


def test_broker_down_still_answers_2xx_and_leaves_the_event_for_the_sweep(post_event, fake_stripe, subscribed, org,
                                                                           monkeypatch, caplog):
    """The event is stored before it is queued; a broker outage must not turn that into a 500 (Stripe would resend,
    and the resend is a duplicate we do not queue). The beat sweep handles it instead."""
    from subscriptions.tasks import stripe_event_handle

    def broker_down(**kwargs):
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    fake_stripe.set_status(subscribed["id"], "past_due")
    with monkeypatch.context() as patch:
        patch.setattr(stripe_event_handle, "delay", broker_down)
        resp = post_event(fake_stripe.event("customer.subscription.updated", subscribed))
    assert resp.status_code == 200 and resp.json() == {"received": True, "duplicate": False}
    assert "Could not queue Stripe event" in caplog.text and "sweep" in caplog.text
    row = StripeEvent.objects.get()
    assert (row.processed_at, row.attempts, row.last_error) == (None, 0, "")
    assert Subscription.objects.get(organization=org).status == "active"  # not handled yet

    StripeEvent.objects.filter(pk=row.pk).update(received_at=timezone.now() - timedelta(minutes=5))
    assert stripe_events_process_pending() == 1  # broker back: the sweep queues it and it is handled
    row.refresh_from_db()
    assert row.processed_at is not None
    assert Subscription.objects.get(organization=org).status == "past_due"


def test_checkout_completed_activates_the_plan_with_trial(post_event, fake_stripe, org, owner):
    session_id = _checkout(org, owner, fake_stripe)
    events = fake_stripe.checkout_complete(session_id)
    for event in events:
        assert post_event(event).status_code == 200
    sub = Subscription.objects.get(organization=org)
    assert (sub.plan.code, sub.interval, sub.status) == ("pro", "month", "trialing")
    assert sub.trial_end is not None and sub.trial_used and sub.current_period_end is not None
    assert entitlements(org).images_per_month == 5000
    assert StripeEvent.objects.filter(processed_at__isnull=False).count() == 3
    assert Invoice.objects.filter(organization=org, status="paid").count() == 1
    verbs = set(AuditEvent.objects.filter(organization=org).values_list("verb", flat=True))
    assert {"billing.checkout_start", "billing.checkout_complete", "billing.plan_change",
            "billing.invoice_paid"} <= verbs


def test_replayed_event_is_acknowledged_and_ignored(post_event, fake_stripe, subscribed, org):
    event = fake_stripe.event("customer.subscription.updated", subscribed)
    first = post_event(event)
    calls = _retrieves(fake_stripe)
    audits = AuditEvent.objects.count()
    again = post_event(event)
    assert first.status_code == again.status_code == 200
    assert first.json() == {"received": True, "duplicate": False}
    assert again.json() == {"received": True, "duplicate": True}
    assert StripeEvent.objects.filter(stripe_id=event["id"]).count() == 1
    assert _retrieves(fake_stripe) == calls and AuditEvent.objects.count() == audits  # handled once


def test_task_redelivery_does_not_handle_twice(fake_stripe, subscribed, post_event):
    from subscriptions.tasks import stripe_event_handle

    post_event(fake_stripe.event("customer.subscription.updated", subscribed))
    row = StripeEvent.objects.get()
    calls = _retrieves(fake_stripe)
    assert stripe_event_handle(event_id=row.pk) is False
    assert _retrieves(fake_stripe) == calls


def test_out_of_order_events_reach_stripes_final_state(post_event, fake_stripe, subscribed, org):
    """deleted arrives before created/updated: each handler re-reads Stripe, so the end state is cancelled."""
    created = fake_stripe.event("customer.subscription.created", subscribed)
    updated = fake_stripe.event("customer.subscription.updated", subscribed)
    fake_stripe.set_status(subscribed["id"], "canceled")
    deleted = fake_stripe.event("customer.subscription.deleted", subscribed)
    for event in (deleted, updated, created):
        assert post_event(event).status_code == 200
    sub = Subscription.objects.get(organization=org)
    assert (sub.status, sub.plan.code) == ("canceled", "free")
    assert entitlements(org).images_per_month == 50


def test_plan_change_in_the_portal_is_picked_up(post_event, fake_stripe, subscribed, org):
    item = subscribed["items"]["data"][0]
    item["price"] = fake_stripe.price("price_enterprise_year")
    assert post_event(fake_stripe.event("customer.subscription.updated", subscribed)).status_code == 200
    sub = Subscription.objects.get(organization=org)
    assert (sub.plan.code, sub.interval) == ("enterprise", "year")
    audit = AuditEvent.objects.filter(organization=org, verb="billing.plan_change").first()
    assert audit.details["from"] == "pro:month" and audit.details["to"] == "enterprise:year"


def test_a_stale_old_subscription_does_not_override_the_new_one(post_event, fake_stripe, subscribed, org):
    old = fake_stripe.subscription_create(customer=subscribed["customer"], prices=["price_starter_month"],
                                          metadata={"organization_id": str(org.pk)})
    old["created"] -= 86400
    fake_stripe.set_status(old["id"], "canceled")
    post_event(fake_stripe.event("customer.subscription.deleted", old))
    sub = Subscription.objects.get(organization=org)
    assert (sub.stripe_subscription_id, sub.status, sub.plan.code) == (subscribed["id"], "active", "pro")


def test_payment_failed_then_paid_drives_dunning(post_event, fake_stripe, subscribed, org, owner, client, settings):
    settings.BILLING_PAST_DUE_GRACE_DAYS = 3
    invoice = fake_stripe.invoice_create(sub=subscribed, status="open", amount=19900)
    fake_stripe.set_status(subscribed["id"], "past_due")
    assert post_event(fake_stripe.event("invoice.payment_failed", invoice)).status_code == 200
    sub = Subscription.objects.get(organization=org)
    assert sub.status == "past_due" and sub.past_due_since is not None
    assert mail.outbox and "Payment failed" in mail.outbox[-1].subject and owner.email in mail.outbox[-1].to
    usage_reserve(organization=org, meter="images", quantity=1)  # within the grace period
    client.force_login(owner)
    page = client.get(reverse("subscriptions:index")).content.decode()
    assert 'data-testid="billing-banner"' in page and "last payment failed" in page

    Subscription.objects.filter(pk=sub.pk).update(past_due_since=timezone.now() - timedelta(days=4))
    with pytest.raises(BillingBlocked):
        usage_reserve(organization=org, meter="images", quantity=1)
    assert "new analyses are paused" in client.get(reverse("subscriptions:usage")).content.decode()

    invoice.update(status="paid", amount_paid=19900)
    fake_stripe.set_status(subscribed["id"], "active")
    assert post_event(fake_stripe.event("invoice.paid", invoice)).status_code == 200
    sub.refresh_from_db()
    assert sub.status == "active" and sub.past_due_since is None
    usage_reserve(organization=org, meter="images", quantity=1)
    assert Invoice.objects.get(stripe_id=invoice["id"]).status == "paid"
    assert "billing-banner" not in client.get(reverse("subscriptions:index")).content.decode()


def test_invoice_events_arriving_out_of_order_keep_the_paid_state(post_event, fake_stripe, subscribed, org):
    invoice = fake_stripe.invoice_create(sub=subscribed, status="paid", amount=19900)
    failed = fake_stripe.event("invoice.payment_failed", {**invoice, "status": "open"})
    paid = fake_stripe.event("invoice.paid", invoice)
    post_event(paid)
    post_event(failed)  # older news: Stripe now says paid and active
    assert Invoice.objects.get(stripe_id=invoice["id"]).status == "paid"
    assert Subscription.objects.get(organization=org).status == "active"


def test_trial_will_end_notifies_billing_people(post_event, fake_stripe, org, owner, make_member):
    clinician = make_member(org, Role.CLINICIAN)
    session_id = _checkout(org, owner, fake_stripe)
    sub_event = fake_stripe.checkout_complete(session_id)[0]
    post_event(fake_stripe.event("customer.subscription.trial_will_end", sub_event["data"]["object"]))
    assert AuditEvent.objects.filter(organization=org, verb="billing.trial_will_end").exists()
    message = mail.outbox[-1]
    assert "trial ends soon" in message.subject and owner.email in message.to and clinician.email not in message.to


def test_unknown_events_are_stored_and_ignored(post_event, fake_stripe):
    assert post_event(fake_stripe.event("customer.created", {"id": "cus_1", "object": "customer"})).status_code == 200
    row = StripeEvent.objects.get()
    assert row.processed_at is not None and row.organization is None


def test_a_failing_handler_leaves_the_event_for_the_sweep(post_event, fake_stripe, subscribed, org):
    fake_stripe.fail_next = [500]
    event = fake_stripe.event("customer.subscription.updated", {**subscribed, "status": "past_due"})
    fake_stripe.set_status(subscribed["id"], "past_due")
    assert post_event(event).status_code == 200  # Stripe gets its 2xx; the work is retried from our store
    row = StripeEvent.objects.get()
    assert row.processed_at is None and row.attempts == 1 and "Simulated failure" in row.last_error
    StripeEvent.objects.filter(pk=row.pk).update(received_at=timezone.now() - timedelta(minutes=5))
    assert stripe_events_process_pending() == 1
    row.refresh_from_db()
    assert row.processed_at is not None
    assert Subscription.objects.get(organization=org).status == "past_due"
