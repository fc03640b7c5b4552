"""Objects behind sentiment's id-taking URLs, built in a given organisation (see tests/test_tenant_isolation.py)."""

from __future__ import annotations


def _objects(org):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from sentiment import alerts, services
    from sentiment.csv_import import csv_import_create
    from tests.sentiment.conftest import make_watchlist, write_scored

    watchlist = make_watchlist(org, name=f"Isolation {org.pk}")
    docs = write_scored(org, [("$NWC plunges after a profit warning", "negative")])
    rule = alerts.alert_rule_create(organization=org, watchlist=watchlist, name="iso", kind="negative_share",
                                    threshold=0.1, min_volume=1)
    alert = alerts.alerts_evaluate(organization=org)[0]
    feed = services.feed_create(organization=org, url=f"http://127.0.0.1:9/{org.pk}.rss", name="iso feed",
                                poll_interval_minutes=30, created_by=None)
    upload = csv_import_create(organization=org, upload=SimpleUploadedFile("n.csv", b"text\nContoso rises\n"),
                               created_by=None)
    return {"watchlist": watchlist, "document": docs[0], "batch": docs[0].batch, "rule": rule, "alert": alert,
            "feed": feed, "csv": upload, "entity": watchlist.entities.first()}


def _pk(kind):
    return lambda org: {"pk": _objects(org)[kind].pk}


OBJECT_ROUTES = {
    "sentiment:csv-import": _pk("csv"),
    "sentiment:feed-poll": _pk("feed"),
    "sentiment:feed-toggle": _pk("feed"),
    "sentiment:feed-delete": _pk("feed"),
    "sentiment:batch-status": _pk("batch"),
    "sentiment:document-detail": _pk("document"),
    "sentiment:watchlist-detail": _pk("watchlist"),
    "sentiment:watchlist-delete": _pk("watchlist"),
    "sentiment:digest-toggle": _pk("watchlist"),
    "sentiment:dashboard": _pk("watchlist"),
    "sentiment:dashboard-data": _pk("watchlist"),
    "sentiment:dashboard-point": _pk("watchlist"),
    "sentiment:entity-delete": _pk("entity"),
    "sentiment:alert-detail": _pk("alert"),
    "sentiment:rule-detail": _pk("rule"),
    "sentiment:rule-test": _pk("rule"),
    "sentiment:rule-toggle": _pk("rule"),
    "sentiment:rule-delete": _pk("rule"),
    "sentiment_api:document-detail": _pk("document"),
    "sentiment_api:batch-detail": _pk("batch"),
    "sentiment_api:alert-detail": _pk("alert"),
}
