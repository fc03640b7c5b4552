"""Alert rules over rollups: negative share, z-score spikes, cooldown, e-mail and HMAC-signed webhooks, test
sends, and the opt-in daily digest."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail

from accounts.exceptions import ServiceError
from sentiment import alerts, services
from sentiment.models import Alert, AlertDelivery
from tests.sentiment.conftest import write_scored
from tests.sentiment.local_http import Route, local_server

pytestmark = pytest.mark.django_db
NOW = datetime(2024, 6, 10, 12, 0, tzinfo=UTC)


def _rule(org, watchlist, **kw):
    defaults = {"name": "Negative NWC", "kind": "negative_share", "threshold": 0.5, "min_volume": 3,
                "entity_key": "NWC", "window_hours": 24}
    return alerts.alert_rule_create(organization=org, watchlist=watchlist, **{**defaults, **kw})


def test_negative_share_fires_once_per_cooldown_with_its_documents(org, other_org, watchlist):
    _rule(org, watchlist, email_recipients="desk@example.org")
    write_scored(org, [("$NWC misses", "negative"), ("$NWC rises", "positive")], published_at=NOW - timedelta(hours=2))
    assert alerts.alerts_evaluate(organization=org, now=NOW) == []  # below the minimum volume
    write_scored(org, [("$NWC warns", "negative"), ("$CTSO falls", "negative")], published_at=NOW - timedelta(hours=1))
    fired = alerts.alerts_evaluate(organization=org, now=NOW)
    assert len(fired) == 1
    alert = fired[0]
    assert alert.entity_key == "NWC" and alert.volume == 3 and alert.negatives == 2
    assert alert.value == pytest.approx(2 / 3) and "67%" in alert.message
    assert sorted(d.text for d in alert.documents.all()) == ["$NWC misses", "$NWC warns"]
    assert alerts.alerts_evaluate(organization=org, now=NOW + timedelta(minutes=5)) == []  # cooldown
    assert len(alerts.alerts_evaluate(organization=org, now=NOW + timedelta(hours=7))) == 1
    # Deliveries: one e-mail per alert with the headlines.
    alerts.alert_deliver(alert_id=alert.pk)
    alerts.alert_deliver(alert_id=alert.pk)  # a redelivered task sends nothing twice
    assert len(mail.outbox) == 1 and "$NWC warns" in mail.outbox[0].body and mail.outbox[0].to == ["desk@example.org"]
    assert not Alert.objects.filter(organization=other_org).exists()


def test_watchlist_wide_rule_and_other_org_data_stay_apart(org, other_org, watchlist):
    from tests.sentiment.conftest import make_watchlist

    _rule(org, watchlist, entity_key="", min_volume=2)
    make_watchlist(other_org)
    write_scored(other_org, [("$FAB falls", "negative"), ("$FAB slumps", "negative")],
                 published_at=NOW - timedelta(hours=1))
    assert alerts.alerts_evaluate(organization=org, now=NOW) == []
    write_scored(org, [("$FAB falls", "negative"), ("$FAB slumps", "negative")], published_at=NOW - timedelta(hours=1))
    fired = alerts.alerts_evaluate(organization=org, now=NOW, keys={"FAB"})
    assert [a.entity_key for a in fired] == ["FAB"]


def test_spike_against_trailing_baseline(org, watchlist):
    _rule(org, watchlist, kind="spike", threshold=3, window_hours=24, baseline_days=7, min_volume=3)
    for day in range(1, 8):  # one negative a day for a week
        write_scored(org, [(f"$NWC minor issue {day}", "negative")], published_at=NOW - timedelta(days=day, hours=1))
    write_scored(org, [(f"$NWC scandal {i}", "negative") for i in range(3)], published_at=NOW - timedelta(hours=2))
    assert alerts.alerts_evaluate(organization=org, now=NOW) == []  # 3 vs mean 1, std floor 1: z = 2
    write_scored(org, [(f"$NWC fraud {i}", "negative") for i in range(3)], published_at=NOW - timedelta(hours=1))
    fired = alerts.alerts_evaluate(organization=org, now=NOW)
    assert len(fired) == 1 and fired[0].value == pytest.approx(5.0) and "z = 5.0" in fired[0].message


def test_webhook_is_signed_and_test_send_reports_each_channel(org, watchlist):
    with local_server() as server:
        server.routes["/hook"] = Route(status=204)
        rule = _rule(org, watchlist, webhook_url=server.url("/hook"), email_recipients="a@example.org")
        deliveries = alerts.alert_rule_send_test(rule=rule, actor=None)
        assert [(d.channel, d.ok) for d in deliveries] == [("email", True), ("webhook", True)]
        request = server.requests[-1]
        timestamp = request.headers["X-Lumen-Timestamp"]
        expected = alerts.sign(secret=rule.webhook_secret, timestamp=timestamp, body=request.body)
        assert request.headers["X-Lumen-Signature"] == expected and expected.startswith("sha256=")
        assert json.loads(request.body)["event"] == "sentiment.alert.test"
        server.routes["/hook"] = Route(status=500)
        write_scored(org, [(f"$NWC falls {i}", "negative") for i in range(3)], published_at=NOW - timedelta(hours=1))
        alert = alerts.alerts_evaluate(organization=org, now=NOW)[0]
        deliveries = alerts.alert_deliver(alert_id=alert.pk)
        webhook = [d for d in deliveries if d.channel == "webhook"][0]
        assert not webhook.ok and "HTTP 500" in webhook.detail
        payload = json.loads(server.requests[-1].body)
        assert payload["alert"]["entity"] == "NWC" and len(payload["alert"]["documents"]) == 3
    assert AlertDelivery.objects.filter(rule=rule).count() == 4


def test_rule_validation_says_what_to_fix(org, watchlist):
    with pytest.raises(ServiceError, match="between 0 and 1"):
        _rule(org, watchlist, threshold=60)
    with pytest.raises(ServiceError, match="not in the watchlist"):
        _rule(org, watchlist, entity_key="ZZZ")
    with pytest.raises(ServiceError, match="not an e-mail"):
        _rule(org, watchlist, email_recipients="desk@example.org, nope")
    rule = _rule(org, watchlist)
    with pytest.raises(ServiceError, match="no e-mail recipients and no webhook"):
        alerts.alert_rule_send_test(rule=rule, actor=None)


def test_daily_digest_goes_to_opted_in_users_once_a_day(org, watchlist, owner, analyst, settings):
    settings.SENTIMENT_DIGEST_HOUR_UTC = 7
    services.digest_set(watchlist=watchlist, user=analyst, enabled=True)
    write_scored(org, [("$NWC plunges on fraud probe", "negative"), ("$CTSO rises", "positive")],
                 published_at=NOW - timedelta(hours=3))
    assert alerts.digests_send_due(now=NOW.replace(hour=6)) == 0
    assert alerts.digests_send_due(now=NOW) == 1
    assert alerts.digests_send_due(now=NOW + timedelta(hours=1)) == 0
    message = mail.outbox[0]
    assert message.to == [analyst.email] and "Portfolio" in message.subject
    assert "2 documents in the last 24 hours, 1 negative" in message.body
    assert "$NWC plunges on fraud probe" in message.body and "not investment advice" in message.body
    services.digest_set(watchlist=watchlist, user=analyst, enabled=False)
    assert alerts.digests_send_due(now=NOW + timedelta(days=1)) == 0


def test_alert_keeps_the_most_negative_documents(org, other_org, watchlist):
    from tests.sentiment.conftest import make_watchlist

    _rule(org, watchlist, min_volume=3)
    for i in range(25):  # strength 0.5 -> 0.98: the later, the more negative
        write_scored(org, [(f"$NWC falls {i}", "negative")], published_at=NOW - timedelta(hours=1),
                     strength=0.5 + 0.02 * i)
    make_watchlist(other_org)  # even more negative news in the other organisation stays out
    write_scored(other_org, [(f"$NWC collapses {i}", "negative") for i in range(3)],
                 published_at=NOW - timedelta(hours=1), strength=0.99)
    alert = alerts.alerts_evaluate(organization=org, now=NOW)[0]
    assert alert.volume == 25
    kept = sorted(int(d.text.rsplit(" ", 1)[1]) for d in alert.documents.all())
    assert kept == list(range(5, 25))  # the 20 most negative, not the 20 mildest


def _member_of(org, user, role):
    from tests.accounts.factories import MembershipFactory

    return MembershipFactory(organization=org, user=user, role=role)


def test_digest_goes_only_to_members_who_may_view_sentiment(org, other_org, watchlist, owner, analyst, make_member,
                                                            settings):
    from accounts.capabilities import Role
    from accounts.models import Membership
    from accounts.services import membership_remove
    from sentiment.models import DigestSubscription
    from tests.sentiment.conftest import make_watchlist

    settings.SENTIMENT_DIGEST_HOUR_UTC = 7
    leaver = make_member(org, Role.ANALYST)
    their_watchlist = make_watchlist(other_org)
    _member_of(other_org, leaver, Role.VIEWER)  # still a member of the other organisation
    left_behind = make_member(org, Role.VIEWER)
    billing = make_member(org, Role.BILLING)
    for user in (analyst, leaver, left_behind, billing):
        services.digest_set(watchlist=watchlist, user=user, enabled=True)
    services.digest_set(watchlist=their_watchlist, user=leaver, enabled=True)
    write_scored(org, [("$NWC plunges on fraud probe", "negative")], published_at=NOW - timedelta(hours=3))
    # Removing a member drops their opt-ins in that organisation only.
    membership_remove(organization=org, actor=owner, actor_role=Role.OWNER,
                      membership_id=Membership.objects.get(organization=org, user=leaver).pk)
    assert not DigestSubscription.objects.filter(organization=org, user=leaver).exists()
    assert DigestSubscription.objects.filter(organization=other_org, user=leaver).exists()
    # A membership gone without the service, and a role that cannot view sentiment: no digest, opt-in dropped.
    Membership.objects.filter(organization=org, user=left_behind).delete()
    assert alerts.digests_send_due(now=NOW) == 2
    assert sorted((m.to[0], m.subject) for m in mail.outbox) == sorted([
        (analyst.email, "[Lumen] Daily digest: Portfolio"), (leaver.email, "[Lumen] Daily digest: Portfolio")])
    leaver_digest = [m for m in mail.outbox if m.to == [leaver.email]][0]
    assert "plunges" not in leaver_digest.body  # the other organisation's digest, without this one's news
    assert set(DigestSubscription.objects.filter(organization=org).values_list("user", flat=True)) == {analyst.pk}
    assert alerts.digests_send_due(now=NOW + timedelta(days=1)) == 2


def test_failed_webhook_is_retried_without_resending_the_email(org, other_org, watchlist):
    with local_server() as server:
        server.routes["/hook"] = Route(status=503)
        _rule(org, watchlist, webhook_url=server.url("/hook"), email_recipients="desk@example.org")
        write_scored(org, [(f"$NWC falls {i}", "negative") for i in range(3)], published_at=NOW - timedelta(hours=1))
        alert = alerts.alerts_evaluate(organization=org, now=NOW)[0]
        first = alerts.alert_deliver(alert_id=alert.pk)
        assert [(d.channel, d.ok) for d in first] == [("email", True), ("webhook", False)]
        server.routes["/hook"] = Route(status=204)
        second = alerts.alert_deliver(alert_id=alert.pk)
        assert [(d.channel, d.ok) for d in second] == [("webhook", True)]
        assert alerts.alert_deliver(alert_id=alert.pk) == []  # every channel delivered: nothing more is sent
        assert len(server.requests) == 2 and json.loads(server.requests[-1].body)["alert"]["id"] == alert.pk
    assert len(mail.outbox) == 1
    assert list(AlertDelivery.objects.filter(alert=alert).order_by("pk").values_list("channel", "ok")) == [
        ("email", True), ("webhook", False), ("webhook", True)]
    assert not AlertDelivery.objects.filter(organization=other_org).exists()


def test_delivery_task_retries_a_failing_webhook_with_backoff_then_gives_up(org, watchlist):
    from celery.exceptions import Retry

    from sentiment import tasks

    with local_server() as server:
        server.routes["/hook"] = Route(status=500)
        rule = _rule(org, watchlist, webhook_url=server.url("/hook"), email_recipients="desk@example.org")
        write_scored(org, [(f"$NWC falls {i}", "negative") for i in range(3)], published_at=NOW - timedelta(hours=1))
        alert = alerts.alerts_evaluate(organization=org, now=NOW)[0]
        # Run as the worker would, once per (re)delivery: each failed run asks for a later retry.
        for retries, countdown in enumerate([60, 120, 240, 480]):
            with pytest.raises(Retry) as retry:
                tasks.alert_deliver.apply(kwargs={"alert_id": alert.pk}, retries=retries)
            assert retry.value.when == countdown
        assert tasks.alert_deliver.apply(kwargs={"alert_id": alert.pk}, retries=4).get() == 1  # last try, no retry
        assert len(server.requests) == alerts.MAX_DELIVERY_ATTEMPTS == 5
        assert alerts.alert_deliver(alert_id=alert.pk) == []  # the limit holds for any later run too
        assert len(server.requests) == 5
    assert len(mail.outbox) == 1
    assert AlertDelivery.objects.filter(rule=rule, channel="webhook", ok=False).count() == 5
    assert AlertDelivery.objects.filter(rule=rule, channel="email").count() == 1
