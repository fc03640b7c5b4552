"""The scoring pipeline for real with a tiny model: ingest -> on_commit -> task -> ml -> write-back -> rollups."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db.models import Sum

from sentiment import services
from sentiment.models import (
    BatchStatus,
    Document,
    DocumentStatus,
    EntityHour,
    EntityMention,
    Score,
    ScoringBatch,
    SourceKind,
)
from subscriptions.models import UsageEntry, UsageState
from tests.sentiment.conftest import make_watchlist

pytestmark = pytest.mark.django_db

TEXTS = [
    "$NWC Northwind Capital beats estimates and raises guidance",
    "Regulators open an investigation into Contoso (NASDAQ: CTSO) accounting",
    "<p>Fabrikam   Motors <b>recalls</b> 40,000 vehicles</p>",
    "Markets were flat on Tuesday.",
    "Northwind announces a share buyback; $CTSO shares slip",
    "Analysts see steady demand for Fabrikam trucks",
    "Quarterly results will be published on 3 March.",
]


def _ingest(org, texts, capture, *, explain=True, kind=SourceKind.PASTE):
    source = services.source_builtin(organization=org, kind=kind)
    with capture(execute=True):
        return services.documents_ingest(organization=org, source=source,
                                         items=[services.IngestItem(text=t) for t in texts], explain=explain)


def test_paste_is_normalised_scored_explained_and_rolled_up(org, other_org, sentiment_model, watchlist,
                                                             django_capture_on_commit_callbacks):
    published = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    source = services.source_builtin(organization=org, kind=SourceKind.API)
    items = [services.IngestItem(text=t, published_at=published) for t in TEXTS]
    with django_capture_on_commit_callbacks(execute=True):
        result = services.documents_ingest(organization=org, source=source, items=items)
    batch = ScoringBatch.objects.get(pk=result.batch.pk)
    assert batch.status == BatchStatus.SUCCEEDED and batch.done == batch.total == len(TEXTS)
    assert batch.model == sentiment_model and batch.quota_settled == "committed"
    docs = list(Document.objects.filter(organization=org).order_by("pk"))
    assert docs[2].text == "Fabrikam Motors recalls 40,000 vehicles"  # HTML stripped, whitespace collapsed
    assert all(d.status == DocumentStatus.SCORED for d in docs)
    for doc in docs:
        score = doc.score
        assert score.label in ("negative", "neutral", "positive")
        assert abs(score.p_negative + score.p_neutral + score.p_positive - 1) < 1e-4
        assert score.sentiment_index == pytest.approx(score.p_positive - score.p_negative)
        assert score.model_sha256 == sentiment_model.sha256
        assert score.attributions and all(doc.text[s:e].strip() for s, e, _ in score.attributions)
        assert max(abs(v) for *_, v in score.attributions) == pytest.approx(1.0, abs=1e-3)
    mentions = {(m.document_id, m.key, m.kind) for m in EntityMention.objects.filter(organization=org)}
    assert (docs[0].pk, "NWC", "cashtag") in mentions and (docs[1].pk, "CTSO", "ticker") in mentions
    assert (docs[2].pk, "FAB", "alias") in mentions and (docs[4].pk, "NWC", "alias") in mentions
    for m in EntityMention.objects.filter(organization=org):
        assert m.document.text[m.start:m.end] == m.text
    # Rollups: one row per entity for that hour; NWC is named in two documents (one twice: counted once each).
    nwc = EntityHour.objects.get(organization=org, key="NWC")
    assert nwc.hour == datetime(2024, 5, 1, 9, tzinfo=UTC) and nwc.count == 2
    nwc_docs = Score.objects.filter(document__in=[docs[0], docs[4]])
    assert nwc.index_sum == pytest.approx(sum(s.sentiment_index for s in nwc_docs), abs=1e-6)
    assert nwc.negatives + nwc.neutrals + nwc.positives == 2
    assert EntityHour.objects.filter(organization=org).aggregate(n=Sum("count"))["n"] == EntityMention.objects.filter(
        organization=org).values("document_id", "key").distinct().count()
    # Quota: one committed text per created document, charged once.
    committed = UsageEntry.objects.filter(organization=org, state=UsageState.COMMITTED, meter="texts")
    assert committed.count() == 1 and committed.get().quantity == len(TEXTS)
    # Nothing leaks to the other organisation.
    assert not Document.objects.filter(organization=other_org).exists()
    assert not EntityHour.objects.filter(organization=other_org).exists()


def test_duplicates_and_bad_items_do_not_sink_the_batch(org, other_org, sentiment_model,
                                                        django_capture_on_commit_callbacks):
    first = _ingest(org, ["Contoso profit rises", "Fabrikam cuts jobs"], django_capture_on_commit_callbacks)
    assert first.created == 2
    again = _ingest(org, ["CONTOSO   profit rises", "", "<p> </p>", "Northwind wins a contract",
                          "Northwind wins a contract", "x" * 30_000], django_capture_on_commit_callbacks)
    statuses = [r.status for r in again.results]
    assert statuses == ["duplicate", "rejected", "rejected", "created", "duplicate", "rejected"]
    assert again.results[0].document_id == first.results[0].document_id
    assert "already imported" in again.results[0].message and "item 3" in again.results[4].message
    assert "empty" in again.results[1].message and "characters" in again.results[5].message
    assert Document.objects.filter(organization=org).count() == 3
    # The same text in another organisation is that organisation's own document.
    theirs = _ingest(other_org, ["Contoso profit rises"], django_capture_on_commit_callbacks)
    assert theirs.created == 1


def test_redelivered_batch_is_scored_once(org, sentiment_model, watchlist, django_capture_on_commit_callbacks):
    from sentiment.tasks import score_batch

    result = _ingest(org, ["$NWC rallies", "$NWC slumps"], django_capture_on_commit_callbacks, explain=False)
    score_batch(batch_id=result.batch.pk)  # a second delivery of the same message
    assert Score.objects.filter(organization=org).count() == 2
    assert EntityHour.objects.get(organization=org, key="NWC").count == 2
    assert all(s.attributions is None for s in Score.objects.filter(organization=org))
    assert UsageEntry.objects.filter(organization=org, state=UsageState.COMMITTED).count() == 1


def test_no_model_fails_the_batch_with_what_to_do(org, django_capture_on_commit_callbacks):
    result = _ingest(org, ["Contoso profit rises"], django_capture_on_commit_callbacks)
    batch = ScoringBatch.objects.get(pk=result.batch.pk)
    assert batch.status == BatchStatus.FAILED and "build_demo_sentiment_model" in batch.error_message
    assert batch.quota_settled == "released"
    assert Document.objects.get(organization=org).status == DocumentStatus.FAILED


def test_a_duplicate_message_without_a_model_leaves_a_running_batch_alone(org, other_org):
    from sentiment.tasks import score_batch

    running = _ingest_unsent(org, ["Contoso profit rises"])
    waiting = _ingest_unsent(other_org, ["Fabrikam slumps"])
    ScoringBatch.objects.filter(pk=running.pk).update(status=BatchStatus.RUNNING)  # a worker is scoring it
    score_batch(batch_id=running.pk)  # a duplicate delivery on a worker that has no model
    assert ScoringBatch.objects.get(pk=running.pk).status == BatchStatus.RUNNING
    score_batch(batch_id=waiting.pk)  # a batch nobody started still fails with what to do
    assert ScoringBatch.objects.get(pk=waiting.pk).status == BatchStatus.FAILED


def test_tampered_weights_fail_the_batch_clearly(org, settings, tmp_path, sentiment_model,
                                                 django_capture_on_commit_callbacks):
    import shutil

    from sentiment.ml.runtime import clear_model_cache
    from sentiment.services import model_path, model_register

    copy = tmp_path / "tampered" / "v1"
    shutil.copytree(model_path(sentiment_model), copy)
    registered = model_register(model_dir=copy)
    registered.sha256 = "f" * 64
    registered.save()
    clear_model_cache()
    result = _ingest(org, ["Contoso profit rises"], django_capture_on_commit_callbacks)
    batch = ScoringBatch.objects.get(pk=result.batch.pk)
    assert batch.status == BatchStatus.FAILED and "could not be loaded" in batch.error_message


def test_quota_exceeded_rolls_back_the_ingest_with_numbers(org, sentiment_model):
    from subscriptions.exceptions import QuotaExceeded
    from tests.subscriptions.factories import shrink_plan

    shrink_plan("free", texts_per_month=2)
    source = services.source_builtin(organization=org, kind=SourceKind.PASTE)
    with pytest.raises(QuotaExceeded) as err:
        services.documents_ingest(organization=org, source=source,
                                  items=[services.IngestItem(text=f"Text number {i}") for i in range(3)])
    assert err.value.details["remaining"] == 2 and err.value.details["requested"] == 3
    assert not Document.objects.filter(organization=org).exists()


def test_stuck_batches_are_requeued_then_given_up(org, sentiment_model, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    source = services.source_builtin(organization=org, kind=SourceKind.PASTE)
    result = services.documents_ingest(organization=org, source=source, items=[services.IngestItem(text="Lost one")])
    an_hour_ago = timezone.now() - timedelta(hours=1)
    ScoringBatch.objects.filter(pk=result.batch.pk).update(created_at=an_hour_ago, queued_at=an_hour_ago)
    with django_capture_on_commit_callbacks(execute=True):
        out = services.batches_requeue_stuck()
    assert out["requeued"] == [result.batch.pk]
    assert ScoringBatch.objects.get(pk=result.batch.pk).status == BatchStatus.SUCCEEDED



def _ingest_unsent(org, texts):
    """Import `texts` without running on_commit: the batch's message waits on the broker (or was lost)."""
    source = services.source_builtin(organization=org, kind=SourceKind.PASTE)
    return services.documents_ingest(organization=org, source=source,
                                     items=[services.IngestItem(text=t) for t in texts]).batch


def _past_the_stuck_limit(batch, field):
    """Move `field` of `batch` back past SENTIMENT_STUCK_BATCH_SECONDS, as if that long had passed since."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    when = timezone.now() - timedelta(seconds=settings.SENTIMENT_STUCK_BATCH_SECONDS + 60)
    ScoringBatch.objects.filter(pk=batch.pk).update(**{field: when})


def test_a_batch_queued_behind_a_long_backlog_is_sent_again_but_never_failed_and_then_scored(
        org, other_org, sentiment_model, django_capture_on_commit_callbacks):
    ours = _ingest_unsent(org, ["Contoso profit rises", "Fabrikam cuts jobs"])
    theirs = ScoringBatch.objects.get(pk=_ingest_unsent(other_org, ["Contoso profit rises"]).pk)
    _past_the_stuck_limit(ours, "created_at")
    sweeps = 9  # hours behind busy workers: three times as many sweeps as interruptions that fail a batch
    messages = []
    for _ in range(sweeps):
        _past_the_stuck_limit(ours, "queued_at")
        with django_capture_on_commit_callbacks() as sent:
            assert services.batches_requeue_stuck() == {"requeued": [ours.pk], "failed": []}  # a lost message?
            assert services.batches_requeue_stuck() == {"requeued": [], "failed": []}  # one re-send per window
        messages += sent
    assert len(messages) == sweeps
    batch = ScoringBatch.objects.get(pk=ours.pk)
    assert (batch.status, batch.error_message, batch.interrupt_count, batch.enqueue_count) == (
        BatchStatus.QUEUED, "", 0, 1 + sweeps)
    assert batch.created_at < batch.queued_at  # when it was imported stays as it was
    assert set(Document.objects.filter(batch=batch).values_list("status", flat=True)) == {DocumentStatus.QUEUED}
    # the other organisation's queued batch is within the limit: neither sent again nor counted
    untouched = ScoringBatch.objects.get(pk=theirs.pk)
    assert (untouched.status, untouched.enqueue_count, untouched.queued_at) == (
        BatchStatus.QUEUED, 1, theirs.queued_at)

    # The workers catch up: the first copy scores the batch, every later copy finds it no longer queued.
    with django_capture_on_commit_callbacks(execute=True):
        for message in messages:
            message()
    batch.refresh_from_db()
    assert batch.status == BatchStatus.SUCCEEDED and batch.done == 2, batch.error_message
    assert Score.objects.filter(organization=org).count() == 2
    committed = UsageEntry.objects.filter(organization=org, state=UsageState.COMMITTED, meter="texts")
    assert committed.count() == 1 and committed.get().quantity == 2
    assert ScoringBatch.objects.get(pk=theirs.pk).status == BatchStatus.QUEUED
    assert not Score.objects.filter(organization=other_org).exists()


def test_a_running_batch_fails_on_the_third_interruption_but_never_for_waiting_in_the_queue_again(
        org, other_org, sentiment_model, django_capture_on_commit_callbacks):
    ours = _ingest_unsent(org, ["Contoso profit rises", "Fabrikam cuts jobs"])
    theirs = _ingest_unsent(other_org, ["Contoso profit rises"])
    services.batch_start(batch_id=theirs.pk, model=sentiment_model)  # on a worker, within the limit: never stuck
    for interruption in (1, 2):
        services.batch_start(batch_id=ours.pk, model=sentiment_model)  # a worker takes it ...
        _past_the_stuck_limit(ours, "started_at")  # ... and is killed
        with django_capture_on_commit_callbacks() as sent:
            assert services.batches_requeue_stuck() == {"requeued": [ours.pk], "failed": []}
        assert len(sent) == 1
        batch = ScoringBatch.objects.get(pk=ours.pk)
        assert (batch.status, batch.started_at, batch.interrupt_count) == (BatchStatus.QUEUED, None, interruption)
        for _ in range(4):  # then it waits behind a backlog for over an hour
            _past_the_stuck_limit(ours, "queued_at")
            with django_capture_on_commit_callbacks():
                assert services.batches_requeue_stuck() == {"requeued": [ours.pk], "failed": []}
        batch.refresh_from_db()
        assert (batch.status, batch.interrupt_count, batch.error_message) == (BatchStatus.QUEUED, interruption, "")

    services.batch_start(batch_id=ours.pk, model=sentiment_model)
    _past_the_stuck_limit(ours, "started_at")  # the third interruption
    with django_capture_on_commit_callbacks(execute=True):
        assert services.batches_requeue_stuck() == {"requeued": [], "failed": [ours.pk]}
    batch = ScoringBatch.objects.get(pk=ours.pk)
    assert batch.status == BatchStatus.FAILED and "interrupted three times" in batch.error_message
    assert batch.interrupt_count == 3 and batch.quota_settled == "released"
    assert set(Document.objects.filter(batch=batch).values_list("status", flat=True)) == {DocumentStatus.FAILED}
    untouched = ScoringBatch.objects.get(pk=theirs.pk)
    assert (untouched.status, untouched.interrupt_count, untouched.enqueue_count, untouched.quota_settled) == (
        BatchStatus.RUNNING, 0, 1, "")
    assert Document.objects.get(organization=other_org).status == DocumentStatus.QUEUED

def test_second_watchlist_entities_and_cashtags_outside_watchlists(org, sentiment_model,
                                                                   django_capture_on_commit_callbacks):
    make_watchlist(org, "Banks", [("BNK", "Bank of Nowhere", ["Nowhere Bank"])])
    _ingest(org, ["Nowhere Bank raises its dividend while $ZZZ falls"], django_capture_on_commit_callbacks)
    keys = set(EntityMention.objects.filter(organization=org).values_list("key", flat=True))
    assert keys == {"BNK", "ZZZ"}


def test_failed_text_imported_again_is_scored_again(request, org, other_org, django_capture_on_commit_callbacks):
    failed = _ingest(org, ["Contoso profit rises", "Fabrikam cuts jobs"], django_capture_on_commit_callbacks)
    theirs = _ingest(other_org, ["Contoso profit rises"], django_capture_on_commit_callbacks)
    assert Document.objects.get(pk=failed.results[0].document_id).status == DocumentStatus.FAILED
    request.getfixturevalue("sentiment_model")  # the operator installs a model; the user imports the text again
    again = _ingest(org, ["Northwind wins a contract", "CONTOSO profit  rises", "contoso profit rises"],
                    django_capture_on_commit_callbacks)
    assert [r.status for r in again.results] == ["created", "created", "duplicate"]
    assert again.created == 2 and again.requeued == 1 and again.results[1].requeued
    assert again.results[1].document_id == failed.results[0].document_id
    assert "scored again" in again.results[1].message and "item 1" in again.results[2].message
    batch = ScoringBatch.objects.get(pk=again.batch.pk)
    assert batch.status == BatchStatus.SUCCEEDED and batch.total == batch.done == 2
    rescored = Document.objects.get(pk=failed.results[0].document_id)
    assert rescored.status == DocumentStatus.SCORED and rescored.batch_id == batch.pk and rescored.score.label
    assert Document.objects.get(pk=failed.results[1].document_id).status == DocumentStatus.FAILED  # not re-sent
    assert Document.objects.filter(organization=org).count() == 3
    # Quota: the failed batch released its reservation, the new one charged both texts once.
    committed = UsageEntry.objects.get(organization=org, state=UsageState.COMMITTED, meter="texts")
    assert committed.quantity == 2
    # Scored now, so a further import is a plain duplicate; the other organisation's failed copy is untouched.
    assert [r.status for r in _ingest(org, ["Contoso profit rises"], django_capture_on_commit_callbacks).results] == [
        "duplicate"]
    assert Document.objects.get(pk=theirs.results[0].document_id).status == DocumentStatus.FAILED
    assert not Score.objects.filter(organization=other_org).exists()


def test_requeued_document_is_written_back_by_its_new_batch_only(org, sentiment_model):
    source = services.source_builtin(organization=org, kind=SourceKind.PASTE)
    items = [services.IngestItem(text="Contoso profit rises")]
    old = services.documents_ingest(organization=org, source=source, items=items)
    services.batch_fail(batch_id=old.batch.pk, message="Scoring failed unexpectedly.")
    new = services.documents_ingest(organization=org, source=source, items=items)
    doc_id = new.results[0].document_id
    assert doc_id == old.results[0].document_id and new.batch.pk != old.batch.pk
    scored = [services.ScoredText(document_id=doc_id, label="positive",
                                  probabilities={"negative": 0.1, "neutral": 0.2, "positive": 0.7})]
    # A worker still busy with the old, failed batch must not score (and count) the document for it.
    assert services.scores_write(organization=org, batch_id=old.batch.pk, scored=scored, model=sentiment_model,
                                 watchlist={}) == set()
    assert not Score.objects.filter(document_id=doc_id).exists()
    services.scores_write(organization=org, batch_id=new.batch.pk, scored=scored, model=sentiment_model, watchlist={})
    assert Score.objects.get(document_id=doc_id).label == "positive"
    assert ScoringBatch.objects.get(pk=new.batch.pk).done == 1 and ScoringBatch.objects.get(pk=old.batch.pk).done == 0
