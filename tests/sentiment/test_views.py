"""Pages: sources (paste, CSV with mapping, feeds), documents with highlights, watchlists, dashboard JSON and
drill-down, alerts with send-test, model card; empty states and role checks."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from sentiment.models import AlertRule, CsvImport, Document, Watchlist
from tests.sentiment.conftest import write_scored

pytestmark = pytest.mark.django_db


def test_empty_states_guide_the_first_steps(analyst_client):
    for name, text in [("sentiment:index", "No news yet"), ("sentiment:documents", "No documents yet"),
                       ("sentiment:watchlists", "No watchlists yet"), ("sentiment:alerts", "No rules yet"),
                       ("sentiment:model-card", "No model installed"), ("sentiment:sources", "No feeds yet")]:
        page = analyst_client.get(reverse(name))
        assert page.status_code == 200 and text in page.content.decode(), name


def test_paste_scores_and_shows_progress_then_highlights(analyst_client, org, sentiment_model, watchlist,
                                                         django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = analyst_client.post(reverse("sentiment:paste"), {
            "text": "$NWC Northwind beats estimates\nContoso warns on profit\n\n", "mode": "lines", "explain": "on"})
    assert response.status_code == 302 and "batch=" in response["Location"]
    listing = analyst_client.get(response["Location"])
    html = listing.content.decode()
    assert "2 text(s) queued for scoring" in html and "Scored" in html and "Contoso warns on profit" in html
    doc = Document.objects.get(organization=org, text__startswith="$NWC")
    detail = analyst_client.get(reverse("sentiment:document-detail", kwargs={"pk": doc.pk})).content.decode()
    assert 'class="entity' in detail and 'data-entity="NWC"' in detail and "Probabilities" in detail
    assert 'class="highlighted label-' in detail and "attr pro" in detail
    assert "Words behind" in detail
    status = analyst_client.get(reverse("sentiment:batch-status", kwargs={"pk": doc.batch_id}))
    assert b"hx-trigger" not in status.content and b"Scored" in status.content


def test_paste_of_failed_texts_says_they_are_scored_again(analyst_client, org, other_org):
    from sentiment.services import batch_fail

    analyst_client.post(reverse("sentiment:paste"), {"text": "Contoso warns on profit", "mode": "lines"})
    batch_fail(batch_id=Document.objects.get(organization=org).batch_id, message="No sentiment model is installed.")
    write_scored(other_org, [("Northwind beats estimates", "positive")])
    response = analyst_client.post(reverse("sentiment:paste"), {
        "text": "Contoso warns on profit\nNorthwind beats estimates\nContoso warns on profit", "mode": "lines"},
        follow=True)
    html = response.content.decode()
    assert "2 text(s) queued for scoring (1 failed before and will be scored again); 1 already imported" in html
    assert Document.objects.filter(organization=org).count() == 2


def test_csv_upload_mapping_and_row_errors(analyst_client, org, sentiment_model, django_capture_on_commit_callbacks):
    data = b"headline,published\nContoso profit rises,2024-01-05\n,2024-01-06\nFabrikam recalls,someday\n"
    response = analyst_client.post(reverse("sentiment:csv-upload"), {"file": SimpleUploadedFile("n.csv", data)})
    upload = CsvImport.objects.get(organization=org)
    assert response["Location"] == reverse("sentiment:csv-import", kwargs={"pk": upload.pk})
    mapping_page = analyst_client.get(response["Location"]).content.decode()
    assert "Which column is which?" in mapping_page and "Contoso profit rises" in mapping_page
    assert '<option value="headline" selected>' in mapping_page
    with django_capture_on_commit_callbacks(execute=True):
        done = analyst_client.post(response["Location"], {"text": "headline", "date": "published", "explain": "on"})
    result = analyst_client.get(done["Location"]).content.decode()
    assert "<strong>1</strong> of 3 rows imported" in result and "Rows not imported" in result
    assert "is empty" in result and "not understood" in result


def test_bad_csv_shows_the_reason_on_the_form(analyst_client):
    page = analyst_client.post(reverse("sentiment:csv-upload"), {"file": SimpleUploadedFile("x.csv", b"PK\x00\x00")})
    assert page.status_code == 200 and "save it as CSV" in page.content.decode()


def test_watchlist_dashboard_data_and_point_drilldown(analyst_client, org, other_org):
    analyst_client.post(reverse("sentiment:watchlists"), {"name": "Autos"})
    watchlist = Watchlist.objects.get(organization=org, name="Autos")
    analyst_client.post(reverse("sentiment:watchlist-detail", kwargs={"pk": watchlist.pk}),
                        {"key": "$fab", "name": "Fabrikam Motors", "aliases": "Fabrikam, Fabrikam Group"})
    entity = watchlist.entities.get()
    assert entity.key == "FAB" and entity.aliases == ["Fabrikam", "Fabrikam Group"]
    empty = analyst_client.get(reverse("sentiment:dashboard", kwargs={"pk": watchlist.pk})).content.decode()
    assert "index-chart" in empty and "chart.umd.min.js" in empty and "js/sentiment/dashboard.js" in empty
    when = datetime.now(UTC) - timedelta(days=2)
    write_scored(org, [("Fabrikam recalls 40,000 trucks", "negative"), ("Fabrikam Group wins order", "positive")],
                 published_at=when)
    write_scored(other_org, [("Fabrikam soars", "positive")], published_at=when)
    data = analyst_client.get(reverse("sentiment:dashboard-data", kwargs={"pk": watchlist.pk}),
                              {"bucket": "day", "entities": "FAB"}).json()
    assert data["entities"] == ["FAB"] and len(data["series"]["FAB"]) == 1
    point = data["series"]["FAB"][0]
    assert point["count"] == 2 and point["negative_share"] == 0.5
    assert "Fabrikam recalls 40,000 trucks" in data["negatives_html"]
    drill = analyst_client.get(reverse("sentiment:dashboard-point", kwargs={"pk": watchlist.pk}),
                               {"key": "FAB", "start": point["t"], "end": point["t"] + data["bucket_ms"]})
    html = drill.content.decode()
    plain = re.sub(r"<[^>]+>", "", html)
    assert "2 documents" in plain and "Fabrikam recalls" in plain and "Fabrikam soars" not in plain
    assert '<mark class="entity" title="FAB (alias)" data-entity="FAB"><span class="attr pro3"' in html
    assert 'class="highlighted label-negative"' in html and 'data-entity="FAB"' in html
    bad = analyst_client.get(reverse("sentiment:dashboard-point", kwargs={"pk": watchlist.pk}), {"key": "FAB"})
    assert b"Click a point" in bad.content


def test_alert_rule_pages_and_send_test(analyst_client, org, watchlist):
    response = analyst_client.post(reverse("sentiment:alerts"), {
        "name": "", "watchlist": watchlist.pk, "entity_key": "nwc", "kind": "negative_share", "threshold": "0.6",
        "window_hours": 24, "min_volume": 3, "baseline_days": 14, "cooldown_minutes": 60,
        "email_recipients": "desk@example.org", "webhook_url": ""})
    rule = AlertRule.objects.get(organization=org)
    assert response["Location"] == reverse("sentiment:rule-detail", kwargs={"pk": rule.pk})
    assert rule.entity_key == "NWC" and rule.name == "NWC alert"
    page = analyst_client.post(reverse("sentiment:rule-test", kwargs={"pk": rule.pk}), follow=True)
    assert "Test e-mail: delivered" in page.content.decode()
    bad = analyst_client.post(reverse("sentiment:alerts"), {
        "watchlist": watchlist.pk, "kind": "negative_share", "threshold": "60", "window_hours": 24, "min_volume": 3,
        "baseline_days": 14, "cooldown_minutes": 60})
    assert bad.status_code == 200 and "between 0 and 1" in bad.content.decode()


def test_viewer_reads_but_cannot_ingest_or_manage(client, viewer, org, watchlist):
    client.force_login(viewer)
    assert client.get(reverse("sentiment:sources")).status_code == 200
    assert client.post(reverse("sentiment:paste"), {"text": "x", "mode": "lines"}).status_code == 403
    assert client.post(reverse("sentiment:watchlists"), {"name": "Mine"}).status_code == 403
    assert client.post(reverse("sentiment:rule-test", kwargs={"pk": 1})).status_code == 403
    page = client.get(reverse("sentiment:sources")).content.decode()
    assert "Paste text" not in page and "Add feed" not in page


def test_demo_model_card_says_not_investment_advice(analyst_client, sentiment_model):
    sentiment_model.is_demo = True
    sentiment_model.manifest = {**sentiment_model.manifest, "metrics": {"test": {
        "n": 10, "accuracy": 0.9, "macro_f1": 0.88, "weighted_f1": 0.89, "per_class": {
            "negative": {"precision": 1, "recall": 0.8, "f1": 0.9, "support": 3}}}}}
    sentiment_model.save()
    page = analyst_client.get(reverse("sentiment:model-card")).content.decode()
    assert "not investment advice" in page and "Held-out test set" in page and "90.0%" in page
    assert "Not investment advice" in analyst_client.get(reverse("sentiment:sources")).content.decode()
