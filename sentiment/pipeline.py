"""Worker side of scoring: load the model once per process, score a batch's documents in chunks, write back.

Imported only by tasks (workers) and benchmarks; the ML stack is imported inside the function bodies."""

from __future__ import annotations

from django.conf import settings
from django_scopes import scope

from sentiment import services
from sentiment.models import Document, DocumentStatus, ScoringBatch, SentimentModel


def load(model: SentimentModel):
    from sentiment.ml.runtime import get_model

    return get_model(model_dir=services.model_path(model), sha256=model.sha256,
                     device=settings.SENTIMENT_DEVICE or None)


def run_batch(*, batch: ScoringBatch, model: SentimentModel) -> set[str]:
    """Score every still-queued document of `batch`; returns the entity keys whose rollups changed."""
    from sentiment.ml.scoring import score_texts

    loaded = load(model)
    organization = batch.organization
    watchlist = services.entity_dictionary(organization=organization)
    with scope(organization=organization):
        pending = list(Document.objects.filter(organization=organization, batch_id=batch.pk,
                                               status=DocumentStatus.QUEUED).order_by("pk").values_list("pk", "text"))
    touched: set[str] = set()
    chunk = max(1, settings.SENTIMENT_WRITE_CHUNK)
    for first in range(0, len(pending), chunk):
        part = pending[first:first + chunk]
        results = score_texts(loaded=loaded, texts=[text for _, text in part], batch_size=settings.SENTIMENT_BATCH_SIZE,
                              explain=batch.explain, ig_steps=settings.SENTIMENT_IG_STEPS)
        scored = [services.ScoredText(
            document_id=pk, label=result.label, probabilities=result.probabilities,
            attributions=[[a.start, a.end, round(a.score, 4)] for a in result.attributions]
            if result.attributions is not None else None)
            for (pk, _), result in zip(part, results, strict=True)]
        touched |= services.scores_write(organization=organization, batch_id=batch.pk, scored=scored, model=model,
                                         watchlist=watchlist)
    return touched
