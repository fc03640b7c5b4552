"""REST API: batch create with per-item results, list/detail with probabilities, entities and attributions,
entity time series, alerts; API keys and tenant isolation."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from sentiment.models import Document
from tests.sentiment.conftest import write_scored

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(org, api_key_for):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_for(org, scope='write')}")
    return client


def test_batch_create_reports_every_item_and_scores_them(api, org, sentiment_model, watchlist,
                                                         django_capture_on_commit_callbacks):
    body = {"documents": [
        {"text": "$NWC beats estimates", "source": "Wire", "published_at": "2024-05-01T09:00:00Z",
         "url": "https://news.example/1", "title": "NWC beats"},
        {"text": "   "},
        {"text": "Contoso (NASDAQ: CTSO) cuts guidance", "published_at": "not a date"},
        {"title": "no text field"},
        {"text": "$nwc BEATS estimates"},
        {"text": "Fabrikam recalls trucks", "language": "en"},
    ]}
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(reverse("sentiment_api:document-list"), body, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert [r["status"] for r in data["results"]] == ["created", "rejected", "rejected", "rejected", "duplicate",
                                                      "created"]
    assert "published_at" in data["results"][2]["message"] and "text" in data["results"][3]["message"]
    assert data["summary"] == {"created": 2, "duplicate": 1, "rejected": 3}
    assert data["batch"]["total"] == 2
    batch = api.get(reverse("sentiment_api:batch-detail", kwargs={"pk": data["batch"]["id"]})).json()
    assert batch["status"] == "succeeded" and batch["done"] == 2
    doc_id = data["results"][0]["document_id"]
    detail = api.get(reverse("sentiment_api:document-detail", kwargs={"pk": doc_id})).json()
    assert detail["publisher"] == "Wire" and detail["title"] == "NWC beats"
    assert set(detail["score"]["probabilities"]) == {"negative", "neutral", "positive"}
    assert detail["score"]["model"]["sha256"] == sentiment_model.sha256
    assert detail["entities"][0] == {"key": "NWC", "kind": "cashtag", "start": 0, "end": 4, "text": "$NWC"}
    assert detail["attributions"] and all(a["text"] for a in detail["attributions"])
    listing = api.get(reverse("sentiment_api:document-list"), {"entity": "NWC"}).json()
    assert listing["count"] == 1 and listing["results"][0]["id"] == doc_id


def test_more_than_1000_items_is_refused_with_the_limit(api, org):
    response = api.post(reverse("sentiment_api:document-list"), {"documents": [{"text": f"t{i}"} for i in range(1001)]},
                        format="json")
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "batch_too_large" and error["details"]["max_items"] == 1000
    assert "at most 1,000" in error["message"]
    assert not Document.objects.filter(organization=org).exists()


def test_bare_list_body_and_all_duplicates_is_200(api, org):
    first = api.post(reverse("sentiment_api:document-list"), [{"text": "Contoso rises"}], format="json")
    assert first.status_code == 201
    again = api.post(reverse("sentiment_api:document-list"), [{"text": "Contoso rises"}], format="json")
    assert again.status_code == 200 and again.json()["batch"] is None


def test_item_numbers_in_results_and_messages_are_the_requests_own(api, org, other_org):
    body = [{"title": "no text field"}, {"text": "Contoso (NASDAQ: CTSO) cuts guidance", "published_at": "soon"},
            {"text": "   "}, {"text": "Fabrikam recalls trucks"}, {"url": "not a url", "text": "x"},
            {"text": "FABRIKAM recalls   trucks"}]
    data = api.post(reverse("sentiment_api:document-list"), body, format="json").json()
    assert [(r["index"], r["status"]) for r in data["results"]] == [
        (0, "rejected"), (1, "rejected"), (2, "rejected"), (3, "created"), (4, "rejected"), (5, "duplicate")]
    assert data["results"][5]["message"] == "same text as item 3 of this batch."
    assert "text" in data["results"][0]["message"] and "url" in data["results"][4]["message"]
    assert data["summary"] == {"created": 1, "duplicate": 1, "rejected": 4}
    assert not Document.objects.filter(organization=other_org).exists()


def test_failed_text_posted_again_is_created_for_scoring_again(api, org, other_org, api_key_for):
    from sentiment.services import batch_fail

    url = reverse("sentiment_api:document-list")
    first = api.post(url, [{"text": "Contoso rises"}, {"text": "Fabrikam falls"}], format="json").json()
    batch_fail(batch_id=first["batch"]["id"], message="No sentiment model is installed.")
    response = api.post(url, [{"text": "contoso RISES"}, {"text": ""}, {"text": "Northwind wins"},
                              {"text": "Contoso rises"}], format="json")
    assert response.status_code == 201
    data = response.json()
    assert [r["status"] for r in data["results"]] == ["created", "rejected", "created", "duplicate"]
    assert data["results"][0]["document_id"] == first["results"][0]["document_id"]
    assert "scored again" in data["results"][0]["message"] and "item 0" in data["results"][3]["message"]
    assert data["summary"] == {"created": 2, "duplicate": 1, "rejected": 1}
    assert sum(data["summary"].values()) == len(data["results"]) and data["batch"]["total"] == 2
    assert Document.objects.get(pk=data["results"][0]["document_id"]).batch_id == data["batch"]["id"]
    # The other organisation's copy of the text is its own new document.
    theirs = APIClient()
    theirs.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_for(other_org, scope='write')}")
    result = theirs.post(url, [{"text": "Contoso rises"}], format="json").json()["results"][0]
    assert result["status"] == "created" and result["document_id"] != first["results"][0]["document_id"]
    assert "scored again" not in result["message"]


def test_read_only_key_cannot_post_and_viewer_session_cannot_ingest(org, api_key_for, viewer):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_for(org, scope='read')}")
    assert client.post(reverse("sentiment_api:document-list"), [{"text": "x"}], format="json").status_code == 403
    assert client.get(reverse("sentiment_api:document-list")).status_code == 200
    session = APIClient()
    session.force_login(viewer)
    assert session.post(reverse("sentiment_api:document-list"), [{"text": "x"}], format="json").status_code == 403


def test_entity_series_and_alerts(api, org, other_org, watchlist):
    from datetime import UTC, datetime, timedelta

    from sentiment import alerts

    now = datetime.now(UTC)
    write_scored(org, [("$NWC falls", "negative"), ("$NWC slumps", "negative"), ("$NWC rises", "positive")],
                 published_at=now - timedelta(hours=1))
    write_scored(other_org, [("$NWC soars", "positive")], published_at=now - timedelta(hours=1))
    series = api.get(reverse("sentiment_api:entity-series", kwargs={"key": "nwc"}), {"bucket": "hour",
                                                                                     "days": 2}).json()
    assert series["entity"] == "NWC" and len(series["points"]) == 1
    point = series["points"][0]
    assert point["count"] == 3 and point["negatives"] == 2 and point["index"] == pytest.approx(-0.85 / 3, abs=1e-3)
    assert api.get(reverse("sentiment_api:entity-series", kwargs={"key": "NWC"}), {"bucket": "year"}).status_code == 400
    alerts.alert_rule_create(organization=org, watchlist=watchlist, name="NWC negative", kind="negative_share",
                             threshold=0.5, min_volume=3, entity_key="NWC")
    fired = alerts.alerts_evaluate(organization=org)
    assert len(fired) == 1
    listing = api.get(reverse("sentiment_api:alert-list")).json()
    assert listing["count"] == 1 and listing["results"][0]["entity"] == "NWC"
    detail = api.get(reverse("sentiment_api:alert-detail", kwargs={"pk": fired[0].pk})).json()
    assert len(detail["documents"]) == 2
    assert api.get(reverse("sentiment_api:alert-rule-list")).json()["results"][0]["name"] == "NWC negative"
