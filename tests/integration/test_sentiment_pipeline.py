"""Integration: an RSS feed served on 127.0.0.1 is polled by a real Celery worker (default queue), its items are
scored on the gpu queue over Redis and PostgreSQL, rollups and an alert follow, and the alert's signed webhook
reaches a local endpoint; an API batch is scored the same way and quota is charged once per text."""

from __future__ import annotations

import json
import time

import pytest

from tests.sentiment.local_http import Route, local_server, rss

pytestmark = pytest.mark.integration



def _items():
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    # Every item falls inside the previous whole hour, so the rollup is one EntityHour row whatever the clock says.
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)

    def at(minute):
        return format_datetime(hour + timedelta(minutes=minute), usegmt=True)

    return [("Northwind Capital plunges after fraud probe", "Shares of $NWC collapsed.", at(10)),
            ("Northwind misses estimates", "$NWC cut its outlook.", at(20)),
            ("Northwind warns on profit", "$NWC sees weak demand.", at(30)),
            ("Contoso opens a new plant", "Contoso hires 200 people.", at(40))]


@pytest.fixture
def tiny_model(tmp_path):
    """A tiny random BERT whose classifier bias makes every text negative, so the alert path is deterministic."""
    import dataclasses

    import torch

    from sentiment.ml.manifest import load_model, save_model
    from sentiment.ml.tiny_model import build_tiny_model
    from sentiment.services import model_register

    build_tiny_model(out_dir=tmp_path / "random")
    loaded = load_model(model_dir=tmp_path / "random", device="cpu")
    with torch.no_grad():
        loaded.model.classifier.bias.copy_(torch.tensor([20.0, 0.0, 0.0]))
    save_model(model=loaded.model, tokenizer=loaded.tokenizer, out_dir=tmp_path / "models" / "tiny" / "v1",
               manifest=dataclasses.replace(loaded.manifest, name="tiny-negative", version="v1"))
    return model_register(model_dir=tmp_path / "models" / "tiny" / "v1")  # absolute path: the worker reads it


def _wait(check, *, timeout=90.0, worker=None, what=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    log = worker.log.read_text()[-3000:] if worker else ""
    raise AssertionError(f"timed out waiting for {what}\n{log}")


def test_feed_to_scores_rollups_alert_and_signed_webhook(org, tiny_model, celery_worker):
    from django.db import transaction
    from django_scopes import scope

    from sentiment import alerts, services
    from sentiment.models import Alert, AlertDelivery, Document, EntityHour, Score, Source
    from tests.sentiment.conftest import make_watchlist

    with local_server() as server:
        server.routes["/wire.rss"] = Route(body=rss(_items()), headers={"Content-Type": "application/rss+xml"})
        server.routes["/hook"] = Route(status=200, body=b"ok")
        watchlist = make_watchlist(org)
        with scope(organization=org):
            rule = alerts.alert_rule_create(organization=org, watchlist=watchlist, name="NWC share",
                                            kind="negative_share", threshold=0.5, min_volume=3, entity_key="NWC",
                                            window_hours=24, webhook_url=server.url("/hook"))
            with transaction.atomic():
                feed = services.feed_create(organization=org, url=server.url("/wire.rss"), name="Wire",
                                            poll_interval_minutes=30, created_by=None)
        _wait(lambda: Source.objects.filter(pk=feed.pk, last_items_added=4).exists(), worker=celery_worker,
              what="the feed poll")
        _wait(lambda: Score.objects.filter(organization=org).count() == 4, worker=celery_worker, what="scores")
        assert Document.objects.filter(organization=org, status="scored").count() == 4
        nwc = EntityHour.objects.get(organization=org, key="NWC")
        assert nwc.count == 3
        assert nwc.negatives == 3
        alert = _wait(lambda: Alert.objects.filter(rule=rule).first(), worker=celery_worker, what="the alert")
        assert alert.volume == 3 and alert.documents.count() == 3
        delivery = _wait(lambda: AlertDelivery.objects.filter(alert=alert).first(), worker=celery_worker,
                         what="the webhook delivery")
        assert delivery.ok, delivery.detail
        hook = [r for r in server.requests if r.path == "/hook"][-1]
        assert hook.headers["X-Lumen-Signature"] == alerts.sign(
            secret=rule.webhook_secret, timestamp=hook.headers["X-Lumen-Timestamp"], body=hook.body)
        assert json.loads(hook.body)["alert"]["entity"] == "NWC"
        feed.refresh_from_db()
        assert feed.health == "ok" and feed.last_error == "" and feed.items_total == 4


def test_api_batch_scored_by_worker_and_quota_charged_once(org, tiny_model, celery_worker, api_key_for):
    from rest_framework.test import APIClient

    from sentiment.models import ScoringBatch
    from subscriptions.models import UsageEntry

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_for(org, scope='write')}")
    body = {"documents": [{"text": f"$CTSO headline number {i}"} for i in range(25)] + [{"text": ""}]}
    response = client.post("/api/v1/sentiment/documents/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["summary"] == {"created": 25, "duplicate": 0, "rejected": 1}
    batch_id = response.json()["batch"]["id"]
    _wait(lambda: ScoringBatch.objects.filter(pk=batch_id, status="succeeded").exists(), worker=celery_worker,
          what="the batch")
    status = client.get(f"/api/v1/sentiment/batches/{batch_id}/").json()
    assert status["done"] == 25 and status["status"] == "succeeded"
    committed = UsageEntry.objects.filter(organization=org, state="committed", meter="texts")
    assert list(committed.values_list("quantity", flat=True)) == [25]
