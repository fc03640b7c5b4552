"""Quota reservations under real concurrency on PostgreSQL: the subscription row lock admits exactly the
allowed number, whatever the interleaving."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.integration

WORKERS = 60


def _fire(org, *, count: int, meter: str = "images") -> tuple[int, int, list[str]]:
    """`count` threads, each with its own database connection, reserve 1 unit at the same instant."""
    from django.db import connections

    from subscriptions.exceptions import QuotaExceeded
    from subscriptions.services import usage_reserve

    barrier = threading.Barrier(count)

    def one(i: int) -> str:
        try:
            barrier.wait(timeout=30)
            usage_reserve(organization=org, meter=meter, quantity=1, job_ref=f"concurrency:{i}")
            return "ok"
        except QuotaExceeded:
            return "quota"
        except Exception as exc:  # anything else is a defect; report it
            return f"{type(exc).__name__}: {exc}"
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(one, range(count)))
    others = [r for r in results if r not in ("ok", "quota")]
    return results.count("ok"), results.count("quota"), others


@pytest.fixture
def catalogue(transactional_db):
    from subscriptions.services import plan_catalogue_seed

    plan_catalogue_seed()  # a transactional test starts from a flushed database


@pytest.mark.parametrize("remaining", [1, 7])
def test_exactly_the_remaining_units_are_granted(catalogue, remaining):
    from django.db import connection

    from subscriptions.models import Plan, UsageEntry, UsageState
    from subscriptions.selectors import usage_totals
    from subscriptions.services import subscription_ensure, usage_commit, usage_reserve
    from tests.accounts.factories import OrganizationFactory

    assert connection.vendor == "postgresql"
    Plan.objects.filter(code="starter").update(images_per_month=20)
    org, bystander = OrganizationFactory(name="Busy Clinic"), OrganizationFactory(name="Quiet Clinic")
    sub = subscription_ensure(organization=org)
    sub.plan = Plan.objects.get(code="starter")
    sub.save()
    usage_commit(reservation=usage_reserve(organization=org, meter="images", quantity=20 - remaining))

    granted, refused, errors = _fire(org, count=WORKERS)

    assert errors == []
    assert (granted, refused) == (remaining, WORKERS - remaining)
    totals = usage_totals(organization=org, meter="images", period=UsageEntry.objects.filter(
        organization=org).first().period)
    assert totals["counted"] == 20
    assert UsageEntry.objects.filter(organization=org, state=UsageState.RESERVED).count() == 1 + remaining
    assert not UsageEntry.objects.filter(organization=bystander).exists()


def test_lazy_free_subscription_is_created_once_under_a_burst(catalogue):
    """An organisation that never had a subscription row: the first burst creates exactly one, on Free."""
    from subscriptions.models import Plan, Subscription
    from tests.accounts.factories import OrganizationFactory

    Plan.objects.filter(code="free").update(texts_per_month=5)
    org = OrganizationFactory(name="New Desk")
    granted, refused, errors = _fire(org, count=WORKERS, meter="texts")
    assert errors == []
    assert (granted, refused) == (5, WORKERS - 5)
    assert Subscription.objects.filter(organization=org).count() == 1
