"""RSS/Atom feeds: fetch with a timeout and a size limit, parse with feedparser, ingest new items, record health.

A failing feed backs off exponentially (interval x 2^failures, capped); a success resets it. Conditional GET
(ETag / Last-Modified) keeps polls of unchanged feeds cheap.
"""

from __future__ import annotations

import calendar
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import feedparser
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from accounts.exceptions import ServiceError
from sentiment import services
from sentiment.models import Source, SourceKind

logger = logging.getLogger(__name__)


class FeedError(Exception):
    """A fetch or parse failure, worded for the feed health panel."""


@dataclass
class FetchResult:
    body: bytes | None  # None: not modified since the last poll
    etag: str = ""
    last_modified: str = ""


def fetch(*, url: str, etag: str = "", last_modified: str = "") -> FetchResult:
    headers = {"User-Agent": "LumenInsight-FeedReader/1", "Accept": "application/rss+xml, application/atom+xml, "
               "application/xml;q=0.9, */*;q=0.5"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - scheme checked when the feed is added
    limit = settings.SENTIMENT_FEED_MAX_BYTES
    try:
        with urllib.request.urlopen(request, timeout=settings.SENTIMENT_FEED_TIMEOUT) as response:  # noqa: S310
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise FeedError(f"the feed is {int(declared):,} bytes, more than the {limit:,} allowed.")
            body = response.read(limit + 1)
            if len(body) > limit:
                raise FeedError(f"the feed is larger than the {limit:,} bytes allowed.")
            return FetchResult(body=body, etag=response.headers.get("ETag", ""),
                               last_modified=response.headers.get("Last-Modified", ""))
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return FetchResult(body=None, etag=etag, last_modified=last_modified)
        raise FeedError(f"the server answered HTTP {exc.code}; check the feed address.") from exc
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FeedError(f"could not fetch the feed ({reason}); check the address and that the site is up.") from exc


def _published(entry) -> datetime | None:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if not parsed:
        return None
    moment = datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
    return min(moment, timezone.now())


def parse(*, body: bytes, feed_title: str = "") -> list[services.IngestItem]:
    parsed = feedparser.parse(body)
    if not parsed.entries and (parsed.bozo or not parsed.get("version")):
        reason = parsed.get("bozo_exception") or "it looks like a web page; use the page's RSS or Atom link"
        raise FeedError(f"the response is not an RSS or Atom feed ({reason}).")
    publisher = parsed.feed.get("title", "") or feed_title
    items = []
    for entry in parsed.entries[: settings.SENTIMENT_FEED_MAX_ITEMS]:
        title = entry.get("title", "")
        summary = entry.get("summary", "") or ""
        text = f"{title}. {summary}" if title and summary else (title or summary)
        items.append(services.IngestItem(text=text, title=title, url=entry.get("link", "")[:1000],
                                         publisher=publisher[:200], published_at=_published(entry),
                                         language=None, external_id=entry.get("id", "")[:500]))
    return items


def _backoff(source: Source) -> timedelta:
    minutes = source.poll_interval_minutes * (2 ** min(source.consecutive_failures, 10))
    return timedelta(minutes=min(minutes, settings.SENTIMENT_FEED_MAX_BACKOFF_MINUTES))


def feed_poll(*, source_id: int) -> dict:
    """Fetch one feed now, ingest its new items and record health. Never raises for a feed problem."""
    with scopes_disabled():
        source = Source.objects.select_related("organization").filter(pk=source_id, kind=SourceKind.FEED).first()
    if source is None:
        return {"skipped": "missing"}
    now = timezone.now()
    added, error = 0, ""
    try:
        result = fetch(url=source.url, etag=source.etag, last_modified=source.last_modified)
        if result.body is not None:
            items = parse(body=result.body, feed_title=source.name)
            if items:
                ingest = services.documents_ingest(organization=source.organization, source=source, items=items)
                added = ingest.created - ingest.requeued  # a failed item scored again is not a new one
            source.etag, source.last_modified = result.etag[:255], result.last_modified[:255]
    except FeedError as exc:
        error = str(exc)
    except ServiceError as exc:  # quota exceeded, billing blocked: shown on the feed, retried with backoff
        error = exc.message
    with transaction.atomic(), scope(organization=source.organization):
        source.last_fetch_at = now
        if error:
            source.last_error = error[:2000]
            source.consecutive_failures += 1
            source.last_items_added = 0
            source.next_fetch_at = now + _backoff(source)
        else:
            source.last_error = ""
            source.consecutive_failures = 0
            source.last_success_at = now
            source.last_items_added = added
            source.items_total += added
            source.next_fetch_at = now + timedelta(minutes=source.poll_interval_minutes)
        source.save(update_fields=["last_fetch_at", "last_error", "consecutive_failures", "last_success_at",
                                   "last_items_added", "items_total", "next_fetch_at", "etag", "last_modified"])
    return {"source_id": source_id, "added": added, "error": error}


def feeds_claim_due(*, now: datetime | None = None) -> list[int]:
    """Active feeds whose next poll time has come (beat sweeps every organisation). Each is claimed by moving its
    next poll time forward first, so a slow poll is never started twice by the next sweep."""
    now = now or timezone.now()
    claimed = []
    with scopes_disabled():
        due = list(Source.objects.filter(kind=SourceKind.FEED, is_active=True)
                   .filter(Q(next_fetch_at__lte=now) | Q(next_fetch_at__isnull=True))
                   .values_list("pk", "next_fetch_at"))
        for pk, previous in due:
            if Source.objects.filter(pk=pk, next_fetch_at=previous).update(
                    next_fetch_at=now + timedelta(minutes=settings.SENTIMENT_FEED_MIN_INTERVAL_MINUTES)):
                claimed.append(pk)
    return claimed
