"""RSS/Atom feeds served by a local HTTP server: ingest, dedupe on re-poll, health, backoff, limits, beat sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from accounts.exceptions import ServiceError
from sentiment import feeds, services
from sentiment.models import Document, Source
from tests.sentiment.local_http import Route, local_server, rss

pytestmark = pytest.mark.django_db

ITEMS = [("Northwind beats estimates", "Profit &lt;b&gt;rose&lt;/b&gt; 12%.", "Mon, 06 May 2024 09:00:00 GMT"),
         ("Contoso recalls vehicles", "", "Tue, 07 May 2024 10:30:00 GMT")]


def _feed(org, url, interval=30):
    return services.feed_create(organization=org, url=url, name="Local wire", poll_interval_minutes=interval,
                                created_by=None)


def test_poll_ingests_items_and_records_health(org, other_org, sentiment_model, django_capture_on_commit_callbacks):
    with local_server() as server:
        server.routes["/news.rss"] = Route(body=rss(ITEMS), headers={"Content-Type": "application/rss+xml",
                                                                     "ETag": '"v1"'})
        feed = _feed(org, server.url("/news.rss"))
        with django_capture_on_commit_callbacks(execute=True):
            out = feeds.feed_poll(source_id=feed.pk)
        assert out == {"source_id": feed.pk, "added": 2, "error": ""}
        docs = {d.title: d for d in Document.objects.filter(organization=org)}
        first = docs["Northwind beats estimates"]
        assert first.text == "Northwind beats estimates. Profit rose 12%." and first.publisher == "Local Wire"
        assert first.published_at == datetime(2024, 5, 6, 9, tzinfo=UTC) and first.url == "https://news.example/0"
        assert docs["Contoso recalls vehicles"].text == "Contoso recalls vehicles"
        assert all(d.status == "scored" for d in docs.values())
        feed.refresh_from_db()
        assert feed.last_items_added == 2 and feed.items_total == 2 and feed.health == "ok" and feed.etag == '"v1"'
        assert feed.next_fetch_at > timezone.now() + timedelta(minutes=29)
        # Polling again adds nothing (content dedupe) and sends the ETag back.
        assert feeds.feed_poll(source_id=feed.pk)["added"] == 0
        assert server.requests[-1].headers.get("If-None-Match") == '"v1"'
    assert not Document.objects.filter(organization=other_org).exists()


def test_failures_back_off_exponentially_and_recover(org, settings):
    settings.SENTIMENT_FEED_MAX_BACKOFF_MINUTES = 100
    with local_server() as server:
        server.routes["/broken.rss"] = Route(status=503, body=b"down")
        feed = _feed(org, server.url("/broken.rss"), interval=10)
        delays = []
        for _ in range(4):
            before = timezone.now()
            assert "HTTP 503" in feeds.feed_poll(source_id=feed.pk)["error"]
            feed.refresh_from_db()
            delays.append(round((feed.next_fetch_at - before).total_seconds() / 60))
        assert delays == [20, 40, 80, 100] and feed.consecutive_failures == 4 and feed.health == "failing"
        assert "check the feed address" in feed.last_error
        server.routes["/broken.rss"] = Route(body=b"<html><body>not a feed</body></html>")
        feeds.feed_poll(source_id=feed.pk)
        feed.refresh_from_db()
        assert "not an RSS or Atom feed" in feed.last_error and feed.consecutive_failures == 5
        server.routes["/broken.rss"] = Route(body=rss(ITEMS[:1]))
        feeds.feed_poll(source_id=feed.pk)
        feed.refresh_from_db()
        assert feed.consecutive_failures == 0 and feed.last_error == "" and feed.last_items_added == 1


def test_size_limit_and_unreachable_host(org, settings):
    settings.SENTIMENT_FEED_MAX_BYTES = 200
    with local_server() as server:
        server.routes["/big.rss"] = Route(body=rss(ITEMS * 5))
        feed = _feed(org, server.url("/big.rss"))
        error = feeds.feed_poll(source_id=feed.pk)["error"]
        assert "200" in error and "allowed" in error
        dead_url = server.url("/gone.rss")
    dead = _feed(org, dead_url)
    assert "could not fetch" in feeds.feed_poll(source_id=dead.pk)["error"]


def test_beat_claims_due_feeds_once(org):
    due = _feed(org, "http://127.0.0.1:9/due.rss")
    later = _feed(org, "http://127.0.0.1:9/later.rss")
    Source.objects.filter(pk=later.pk).update(next_fetch_at=timezone.now() + timedelta(hours=1))
    paused = _feed(org, "http://127.0.0.1:9/paused.rss")
    services.feed_update(source=paused, is_active=False)
    assert feeds.feeds_claim_due() == [due.pk]
    assert feeds.feeds_claim_due() == []  # claimed: the next sweep does not start it again


def test_feed_urls_are_checked(org):
    with pytest.raises(ServiceError, match="http:// or https://"):
        _feed(org, "file:///etc/passwd")
    _feed(org, "http://127.0.0.1:9/a.rss")
    with pytest.raises(ServiceError, match="already added"):
        _feed(org, "http://127.0.0.1:9/a.rss")


def test_failed_feed_items_are_scored_again_on_the_next_poll_but_not_counted_twice(
        request, org, other_org, django_capture_on_commit_callbacks):
    with local_server() as server:
        server.routes["/news.rss"] = Route(body=rss(ITEMS), headers={"Content-Type": "application/rss+xml"})
        feed = _feed(org, server.url("/news.rss"))
        theirs = _feed(other_org, server.url("/news.rss"))
        with django_capture_on_commit_callbacks(execute=True):  # no model yet: the batch fails
            assert feeds.feed_poll(source_id=feed.pk)["added"] == 2
            feeds.feed_poll(source_id=theirs.pk)
        assert set(Document.objects.filter(organization=org).values_list("status", flat=True)) == {"failed"}
        request.getfixturevalue("sentiment_model")
        with django_capture_on_commit_callbacks(execute=True):
            assert feeds.feed_poll(source_id=feed.pk)["added"] == 0
    feed.refresh_from_db()
    assert feed.items_total == 2
    assert set(Document.objects.filter(organization=org).values_list("status", flat=True)) == {"scored"}
    assert set(Document.objects.filter(organization=other_org).values_list("status", flat=True)) == {"failed"}
