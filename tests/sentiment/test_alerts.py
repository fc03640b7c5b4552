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
