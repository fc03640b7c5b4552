"""The usage ledger: reserve / commit / release, typed refusals, dunning and plan fallbacks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from accounts.exceptions import Conflict
from subscriptions.exceptions import BillingBlocked, QuotaExceeded
from subscriptions.models import Subscription, SubscriptionStatus, UsageEntry, UsageState
from subscriptions.selectors import entitlements, period_end, period_start, usage_summary
from subscriptions.services import (
    jobs_slots_free,
    usage_commit,
    usage_release,
    usage_reserve,
)
from tests.subscriptions.factories import put_on_plan, shrink_plan

pytestmark = pytest.mark.django_db


def _meter(org, name):
    return next(m for m in usage_summary(organization=org) if m.meter == name)


@pytest.fixture
def clock(monkeypatch):
    """A settable `timezone.now`: every read of "now" in a test sees the same instant, so a test running across
    midnight on the 1st cannot see two quota months. Starts mid-month; `clock.set(...)` moves it."""

    class Clock:
        now = datetime(2031, 5, 15, 12, 0, tzinfo=UTC)

        def set(self, moment: datetime) -> None:
            self.now = moment

    clock = Clock()
    monkeypatch.setattr(timezone, "now", lambda: clock.now)
    return clock


def test_new_organisation_is_on_free_without_a_row_and_gets_one_on_first_reservation(org):
    assert not Subscription.objects.filter(organization=org).exists()
    ent = entitlements(org)
    assert (ent.plan_code, ent.status, ent.images_per_month, ent.seats) == ("free", "free", 50, 3)
    usage_reserve(organization=org, meter="images", quantity=1)
    sub = Subscription.objects.get(organization=org)
    assert (sub.plan.code, sub.status) == ("free", SubscriptionStatus.FREE)


def test_reserve_up_to_the_limit_then_refuse_with_a_useful_message(clock, org, other_org):
    put_on_plan(org, "starter")
    shrink_plan("starter", images_per_month=5)
    usage_reserve(organization=other_org, meter="images", quantity=50)  # another tenant's usage never counts
    usage_reserve(organization=org, meter="images", quantity=3, job_ref="imaging.analysisjob:1")
    usage_reserve(organization=org, meter="images", quantity=2)
    with pytest.raises(QuotaExceeded) as exc:
        usage_reserve(organization=org, meter="images", quantity=1)
    end = period_end(period_start())
    err = exc.value
    assert err.status == 402 and err.code == "quota_exceeded"
    assert err.message == (f"Image quota reached: 0 of 5 images left this month on the Starter plan. "
                           f"Upgrade under Billing or wait until {end.day} {end:%b}.")
    assert err.details["remaining"] == 0 and err.details["meter"] == "images"
    assert err.details["period_end"] == end.isoformat() and err.details["upgrade_url"] == "/billing/pricing/"
    # Texts are a separate meter.
    usage_reserve(organization=org, meter="texts", quantity=100)


def test_partial_refusal_says_how_much_is_left(org):
    shrink_plan("free", texts_per_month=10)
    usage_reserve(organization=org, meter="texts", quantity=7)
    with pytest.raises(QuotaExceeded, match="Text quota reached: 3 of 10 texts left this month on the Free plan, "
                                            "and this needs 5"):
        usage_reserve(organization=org, meter="texts", quantity=5)


def test_release_gives_units_back_and_commit_charges_them(clock, org):
    shrink_plan("free", images_per_month=4)
    failed = usage_reserve(organization=org, meter="images", quantity=4)
    with pytest.raises(QuotaExceeded):
        usage_reserve(organization=org, meter="images", quantity=1)
    usage_release(reservation=failed)
    ok = usage_reserve(organization=org, meter="images", quantity=3)
    assert _meter(org, "images").pending == 3
    usage_commit(reservation=ok.pk)
    m = _meter(org, "images")
    assert (m.used, m.pending, m.remaining, m.included) == (3, 0, 1, 4)


def test_settling_is_idempotent_and_the_ledger_is_append_only(org):
    res = usage_reserve(organization=org, meter="images", quantity=2)
    first = usage_commit(reservation=res)
    assert usage_commit(reservation=res) == first  # a redelivered task charges once
    usage_release(reservation=res)  # release after commit: nothing to give back
    assert list(UsageEntry.objects.filter(organization=org).values_list("state", "quantity").order_by("id")) == [
        (UsageState.RESERVED, 2), (UsageState.COMMITTED, 2)]
    with pytest.raises(RuntimeError):
        first.save()
    with pytest.raises(RuntimeError):
        first.delete()


def test_commit_after_release_is_refused(org):
    res = usage_reserve(organization=org, meter="texts", quantity=2)
    usage_release(reservation=res)
    usage_release(reservation=res)
    with pytest.raises(Conflict):
        usage_commit(reservation=res)


def test_partial_commit_releases_the_rest(clock, org):
    res = usage_reserve(organization=org, meter="images", quantity=5)
    usage_commit(reservation=res, quantity=3)  # 3 of 5 images analysed, 2 failed
    m = _meter(org, "images")
    assert (m.used, m.pending, m.remaining) == (3, 0, 47)


def test_overage_plans_do_not_block_and_record_overage(org):
    put_on_plan(org, "pro")
    shrink_plan("pro", images_per_month=3)
    res = usage_reserve(organization=org, meter="images", quantity=5)
    row = usage_commit(reservation=res)
    assert row.overage_quantity == 2
    assert _meter(org, "images").overage == 2


def test_past_due_keeps_analyses_during_grace_then_blocks(org, settings):
    settings.BILLING_PAST_DUE_GRACE_DAYS = 7
    put_on_plan(org, "starter", status=SubscriptionStatus.PAST_DUE, past_due_since=timezone.now() - timedelta(days=2))
    usage_reserve(organization=org, meter="images", quantity=1)
    Subscription.objects.filter(organization=org).update(past_due_since=timezone.now() - timedelta(days=8))
    with pytest.raises(BillingBlocked, match="Payment is overdue") as exc:
        usage_reserve(organization=org, meter="images", quantity=1)
    assert exc.value.status == 402
    assert entitlements(org).plan_code == "starter"  # read access and plan stay; only new work is paused


def test_unpaid_blocks_and_cancelled_falls_back_to_free_limits(org):
    put_on_plan(org, "pro", status=SubscriptionStatus.UNPAID)
    with pytest.raises(BillingBlocked):
        usage_reserve(organization=org, meter="texts", quantity=1)
    put_on_plan(org, "pro", status=SubscriptionStatus.CANCELED)
    ent = entitlements(org)
    assert (ent.plan_code, ent.images_per_month, ent.overage_allowed) == ("free", 50, False)
    usage_reserve(organization=org, meter="texts", quantity=1)


def test_free_job_slots_follow_each_organisations_plan(org, other_org):
    """The plan's "max concurrent jobs" is a number of slots: what is left of it, never below zero."""
    assert jobs_slots_free(organization=org, occupied=0) == 1  # Free
    assert jobs_slots_free(organization=org, occupied=1) == 0
    assert jobs_slots_free(organization=org, occupied=3) == 0  # e.g. after a downgrade: none free, not negative
    put_on_plan(other_org, "starter")  # another organisation's plan is not ours
    assert jobs_slots_free(organization=org, occupied=0) == 1
    assert jobs_slots_free(organization=other_org, occupied=1) == 1
    assert jobs_slots_free(organization=other_org, occupied=2) == 0
    put_on_plan(org, "pro", status=SubscriptionStatus.CANCELED)  # a cancelled plan gets the Free plan's limits
    assert jobs_slots_free(organization=org, occupied=0) == 1


def test_job_slots_are_counted_under_the_organisations_quota_lock(org):
    """Inside a transaction the count runs after the subscription row is locked, so two workers or requests cannot
    both see the last free slot. (The lock itself is exercised on PostgreSQL by
    tests/integration/test_quota_concurrency.py.)"""
    seen = []

    def count() -> int:
        seen.append(Subscription.objects.filter(organization=org).exists())  # the lock creates the row on Free
        return 0

    with transaction.atomic():
        assert jobs_slots_free(organization=org, occupied=count) == 1
    assert seen == [True]


def test_usage_counts_per_calendar_month(clock, org):
    """Quota months are calendar months in UTC: last month's usage neither counts nor blocks this month, and a
    reservation settled after midnight on the 1st is charged to the month it was reserved in."""
    shrink_plan("free", images_per_month=4)
    clock.set(datetime(2031, 4, 30, 23, 59, tzinfo=UTC))
    april = usage_reserve(organization=org, meter="images", quantity=3)
    assert april.period.isoformat() == "2031-04-01"
    usage_commit(reservation=usage_reserve(organization=org, meter="images", quantity=1))
    with pytest.raises(QuotaExceeded, match="wait until 1 May"):
        usage_reserve(organization=org, meter="images", quantity=1)

    clock.set(datetime(2031, 5, 1, 0, 1, tzinfo=UTC))  # two minutes later: a new quota month
    usage_commit(reservation=april)  # the April job finished after midnight: still April's usage
    may = _meter(org, "images")
    assert (may.period_start.isoformat(), may.period_end.isoformat()) == ("2031-05-01", "2031-06-01")
    assert (may.used, may.pending, may.remaining) == (0, 0, 4)
    res = usage_reserve(organization=org, meter="images", quantity=4)  # the whole allowance is available again
    assert res.period.isoformat() == "2031-05-01"
    april_usage = usage_summary(organization=org, moment=datetime(2031, 4, 15, tzinfo=UTC))
    assert next(m for m in april_usage if m.meter == "images").used == 4
    assert set(UsageEntry.objects.filter(organization=org, state=UsageState.COMMITTED)
               .values_list("period", flat=True)) == {april.period}
