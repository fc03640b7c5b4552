"""Checkout, plan changes with proration, cancellation, the portal, seats and overage reporting (fake Stripe)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from accounts.capabilities import Role
from accounts.models import AuditEvent, Membership
from accounts.services import invitation_accept, invitation_create
from subscriptions import billing
from subscriptions.exceptions import BillingUnavailable, SeatLimitReached
from subscriptions.models import OverageReport, Subscription, UsageEntry
from subscriptions.services import seats_check_available, subscription_plan_assign, usage_commit, usage_reserve
from subscriptions.tasks import usage_report_overage
from tests.accounts.factories import UserFactory
from tests.subscriptions.factories import put_on_plan, shrink_plan

pytestmark = pytest.mark.django_db


def _last(fake_stripe, path):
    return next(r for r in reversed(fake_stripe.requests) if r["path"] == path and r["method"] == "POST")


def test_checkout_session_has_trial_flexible_billing_and_metered_overage(fake_stripe, org, owner):
    url = billing.checkout_start(organization=org, actor=owner, plan_code="pro", interval="year",
                                 success_url="http://t/ok", cancel_url="http://t/no")
    assert url.startswith("https://fake-stripe.test/checkout/cs_test_")
    params = _last(fake_stripe, "/v1/checkout/sessions")["params"]
    assert params["mode"] == "subscription" and params["client_reference_id"] == str(org.pk)
    assert params["line_items"] == [{"price": "price_pro_year", "quantity": "1"},
                                    {"price": "price_pro_overage_images"}, {"price": "price_pro_overage_texts"}]
    assert params["subscription_data"]["trial_period_days"] == "14"
    assert params["subscription_data"]["billing_mode"] == {"type": "flexible"}
    assert params["subscription_data"]["metadata"] == {"organization_id": str(org.pk), "plan": "pro",
                                                       "interval": "year"}
    headers = _last(fake_stripe, "/v1/checkout/sessions")["headers"]
    assert headers["Stripe-Version"] == "2026-10-28.endive"
    sub = Subscription.objects.get(organization=org)
    assert sub.stripe_customer_id.startswith("cus_")
    # A second checkout reuses the customer and, once a trial was used, offers none.
    Subscription.objects.filter(pk=sub.pk).update(trial_used=True)
    billing.checkout_start(organization=org, actor=owner, plan_code="starter", interval="month",
                           success_url="http://t/ok", cancel_url="http://t/no")
    params = _last(fake_stripe, "/v1/checkout/sessions")["params"]
    assert params["customer"] == sub.stripe_customer_id and "trial_period_days" not in params["subscription_data"]
    assert params["line_items"] == [{"price": "price_starter_month", "quantity": "1"}]
    assert len([r for r in fake_stripe.requests if r["path"] == "/v1/customers"]) == 1


def test_without_stripe_keys_paid_plans_are_unavailable(org, owner, settings):
    settings.STRIPE_SECRET_KEY = ""
    with pytest.raises(BillingUnavailable, match="Payments are not enabled"):
        billing.checkout_start(organization=org, actor=owner, plan_code="pro", interval="month",
                               success_url="x", cancel_url="y")


def test_plan_change_swaps_prices_with_proration(fake_stripe, subscribed, org, owner):
    billing.plan_change(organization=org, actor=owner, plan_code="starter", interval="quarter")
    params = _last(fake_stripe, f"/v1/subscriptions/{subscribed['id']}")["params"]
    assert params["proration_behavior"] == "create_prorations"
    items = params["items"]
    assert items[0]["price"] == "price_starter_quarter"
    assert [i.get("deleted") for i in items[1:]] == ["true", "true"]  # Starter bills no overage
    sub = Subscription.objects.get(organization=org)
    assert (sub.plan.code, sub.interval) == ("starter", "quarter")
    assert AuditEvent.objects.filter(organization=org, verb="billing.plan_change_request").exists()


def test_downgrade_below_member_count_is_refused(fake_stripe, subscribed, org, owner, make_member):
    for _ in range(5):
        make_member(org, Role.VIEWER)
    with pytest.raises(SeatLimitReached, match=r"Starter plan has 5 seats .* 6 members\. Remove 1 member "):
        billing.plan_change(organization=org, actor=owner, plan_code="starter", interval="month")
    assert Subscription.objects.get(organization=org).plan.code == "pro"
    with pytest.raises(SeatLimitReached):  # moving to Free (cancel at period end) needs the seats too
        billing.plan_change(organization=org, actor=owner, plan_code="free", interval="month")
    assert not Subscription.objects.get(organization=org).cancel_at_period_end


def test_cancel_at_period_end_and_resume(fake_stripe, subscribed, org, owner):
    sub = billing.subscription_cancel(organization=org, actor=owner)
    assert sub.cancel_at_period_end and fake_stripe.subscriptions[subscribed["id"]]["cancel_at_period_end"]
    assert sub.plan.code == "pro"  # the paid plan runs until the period ends
    sub = billing.subscription_resume(organization=org, actor=owner)
    assert not sub.cancel_at_period_end
    verbs = list(AuditEvent.objects.filter(organization=org, verb__startswith="billing.cancel")
                 .values_list("verb", flat=True))
    assert sorted(verbs) == ["billing.cancel_scheduled", "billing.cancel_undone"]


def test_seats_refuse_invitations_and_acceptance_beyond_the_plan(org, owner, make_member):
    make_member(org, Role.VIEWER)
    invitation, url = invitation_create(organization=org, invited_by=owner, actor_role=Role.OWNER,
                                        email="third@example.org", role=Role.VIEWER)
    token = url.rstrip("/").rsplit("/", 1)[1]
    make_member(org, Role.VIEWER)  # the third (last Free) seat is taken meanwhile
    with pytest.raises(SeatLimitReached, match="All 3 seats on the Free plan are taken"):
        invitation_create(organization=org, invited_by=owner, actor_role=Role.OWNER, email="x@example.org",
                          role=Role.VIEWER)
    with pytest.raises(SeatLimitReached) as exc:
        invitation_accept(token=token, user=UserFactory(email="third@example.org"))
    assert exc.value.status == 402 and "Remove a member or upgrade" in exc.value.message
    assert Membership.objects.filter(organization=org).count() == 3


def test_seat_check_can_count_pending_invitations(org, owner):
    invitation_create(organization=org, invited_by=owner, actor_role=Role.OWNER, email="a@example.org",
                      role=Role.VIEWER)
    invitation_create(organization=org, invited_by=owner, actor_role=Role.OWNER, email="b@example.org",
                      role=Role.VIEWER)
    seats_check_available(organization=org)
    with pytest.raises(SeatLimitReached, match="2 pending invitation"):
        seats_check_available(organization=org, include_pending_invitations=True)


def test_operator_assignment_refuses_fewer_seats_and_audits(org, owner, make_member):
    subscription_plan_assign(organization=org, plan_code="enterprise", actor=None, reason="contract 42")
    for _ in range(3):
        make_member(org, Role.VIEWER)
    with pytest.raises(SeatLimitReached):
        subscription_plan_assign(organization=org, plan_code="free", actor=owner)
    event = AuditEvent.objects.get(organization=org, verb="billing.plan_change")
    assert event.details["to"] == "enterprise" and event.actor_label == "operator"


def test_overage_is_reported_once_per_ledger_row_with_a_deterministic_identifier(fake_stripe, subscribed, org):
    shrink_plan("pro", images_per_month=10)
    usage_commit(reservation=usage_reserve(organization=org, meter="images", quantity=8))
    row = usage_commit(reservation=usage_reserve(organization=org, meter="images", quantity=5))
    usage_commit(reservation=usage_reserve(organization=org, meter="texts", quantity=3))  # within allowance
    report = OverageReport.objects.get()
    assert (report.entry_id, report.value, report.identifier) == (row.pk, 3, f"lumen-usage-{row.pk}")
    assert report.event_name == "lumen_images" and report.stripe_customer_id == subscribed["customer"]

    fake_stripe.fail_next = [500]  # Stripe down: nothing marked sent, retried next run
    assert usage_report_overage() == 0
    report.refresh_from_db()
    assert report.sent_at is None and report.attempts == 1
    assert usage_report_overage() == 1
    assert usage_report_overage() == 0  # already sent
    report.refresh_from_db()
    assert report.sent_at is not None
    post = fake_stripe.meter_event_posts[-1]
    assert post["identifier"] == f"lumen-usage-{row.pk}" and post["event_name"] == "lumen_images"
    assert post["payload"] == {"stripe_customer_id": subscribed["customer"], "value": "3"}
    assert len(fake_stripe.meter_events) == 1


def test_a_lost_acknowledgement_resends_the_same_identifier(fake_stripe, subscribed, org):
    """Stripe received the event but we crashed before marking it sent: the resend carries the same identifier,
    which Stripe de-duplicates, so the customer is billed once."""
    shrink_plan("pro", texts_per_month=0)
    usage_commit(reservation=usage_reserve(organization=org, meter="texts", quantity=4))
    report = OverageReport.objects.get()
    usage_report_overage()
    OverageReport.objects.filter(pk=report.pk).update(sent_at=None)
    usage_report_overage()
    assert len(fake_stripe.meter_event_posts) == 2
    assert len(fake_stripe.meter_events) == 1 and fake_stripe.meter_events[report.identifier]["payload"]["value"] == "4"


def test_too_old_overage_is_flagged_not_sent(fake_stripe, subscribed, org):
    shrink_plan("pro", texts_per_month=0)
    usage_commit(reservation=usage_reserve(organization=org, meter="texts", quantity=1))
    OverageReport.objects.update(occurred_at=OverageReport.objects.get().occurred_at - timedelta(days=40))
    assert usage_report_overage() == 0
    assert "manually" in OverageReport.objects.get().last_error and not fake_stripe.meter_event_posts


def test_abandoned_overage_leaves_the_queue_so_newer_reports_are_still_sent(fake_stripe, subscribed, org,
                                                                             monkeypatch, caplog):
    """Too-old reports used to stay queued for ever; once a batch was full of them nothing newer was sent."""
    monkeypatch.setattr("subscriptions.tasks.OVERAGE_BATCH_SIZE", 1)  # one stuck report fills the batch
    shrink_plan("pro", texts_per_month=0)
    usage_commit(reservation=usage_reserve(organization=org, meter="texts", quantity=2))
    usage_commit(reservation=usage_reserve(organization=org, meter="texts", quantity=3))
    old, new = OverageReport.objects.order_by("pk")
    OverageReport.objects.filter(pk=old.pk).update(occurred_at=old.occurred_at - timedelta(days=40))

    assert usage_report_overage() == 0  # the oldest first: abandoned, with an error for operators
    old.refresh_from_db()
    assert old.sent_at is None and old.attempts >= billing.OVERAGE_MAX_ATTEMPTS and "manually" in old.last_error
    errors = [r for r in caplog.records if r.levelname == "ERROR" and old.identifier in r.getMessage()]
    assert len(errors) == 1 and "Bill it manually" in errors[0].getMessage()

    assert usage_report_overage() == 1  # the next run reaches the newer report
    new.refresh_from_db()
    assert new.sent_at is not None
    assert [p["identifier"] for p in fake_stripe.meter_event_posts] == [new.identifier]
    assert usage_report_overage() == 0
    assert len([r for r in caplog.records if r.levelname == "ERROR"]) == 1  # abandoned once, not every run


def test_overage_out_of_attempts_is_abandoned_and_logged(fake_stripe, subscribed, org, caplog):
    shrink_plan("pro", texts_per_month=0)
    usage_commit(reservation=usage_reserve(organization=org, meter="texts", quantity=1))
    report = OverageReport.objects.get()
    OverageReport.objects.filter(pk=report.pk).update(attempts=billing.OVERAGE_MAX_ATTEMPTS - 1)
    fake_stripe.fail_next = [500]
    assert usage_report_overage() == 0
    report.refresh_from_db()
    assert report.attempts == billing.OVERAGE_MAX_ATTEMPTS and report.sent_at is None
    assert report.last_error.startswith(f"Sending failed {billing.OVERAGE_MAX_ATTEMPTS} times")
    assert report.last_error.endswith("bill it manually.")
    assert any(r.levelname == "ERROR" and report.identifier in r.getMessage() for r in caplog.records)
    assert usage_report_overage() == 0 and not fake_stripe.meter_event_posts[1:]  # never tried again


def test_admin_lists_abandoned_overage_for_manual_billing(fake_stripe, subscribed, org, admin_client):
    shrink_plan("pro", texts_per_month=0)
    usage_commit(reservation=usage_reserve(organization=org, meter="texts", quantity=1))
    usage_commit(reservation=usage_reserve(organization=org, meter="texts", quantity=1))
    old, queued = OverageReport.objects.order_by("pk")
    OverageReport.objects.filter(pk=old.pk).update(occurred_at=old.occurred_at - timedelta(days=40))
    fake_stripe.fail_next = [500]
    usage_report_overage()
    url = reverse("admin:subscriptions_overagereport_changelist")
    abandoned = admin_client.get(url, {"state": "abandoned"}).content.decode()
    assert old.identifier in abandoned and queued.identifier not in abandoned
    assert "abandoned: bill manually" in abandoned and "Older than the 35 days" in abandoned
    waiting = admin_client.get(url, {"state": "queued"}).content.decode()
    assert queued.identifier in waiting and old.identifier not in waiting


def test_no_overage_report_without_a_stripe_subscription(org):
    put_on_plan(org, "pro")
    shrink_plan("pro", images_per_month=0)
    usage_commit(reservation=usage_reserve(organization=org, meter="images", quantity=2))
    assert UsageEntry.objects.filter(organization=org, overage_quantity=2).exists()
    assert not OverageReport.objects.exists()  # invoiced by contract, not by Stripe
