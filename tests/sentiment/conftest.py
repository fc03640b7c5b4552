"""Sentiment fixtures: a tiny random-weight BERT saved and registered through the real code paths, members,
watchlists, and a helper that writes scores with chosen probabilities through the real write-back service."""

from __future__ import annotations

from datetime import datetime

import pytest


@pytest.fixture(scope="session")
def tiny_sentiment_dir(tmp_path_factory):
    from sentiment.ml.tiny_model import build_tiny_model

    root = tmp_path_factory.mktemp("sentiment-models")
    build_tiny_model(out_dir=root / "tiny-test" / "seed-0")
    return root


@pytest.fixture
def sentiment_model(db, settings, tiny_sentiment_dir):
    """The tiny model registered and active; SENTIMENT_MODELS_DIR points at it."""
    from sentiment.ml.runtime import clear_model_cache
    from sentiment.services import model_register

    settings.SENTIMENT_MODELS_DIR = tiny_sentiment_dir
    settings.SENTIMENT_BATCH_SIZE = 4
    settings.SENTIMENT_WRITE_CHUNK = 5
    settings.SENTIMENT_IG_STEPS = 4
    clear_model_cache()
    return model_register(model_dir=tiny_sentiment_dir / "tiny-test" / "seed-0")


@pytest.fixture
def analyst(org, make_member):
    from accounts.capabilities import Role

    return make_member(org, Role.ANALYST)


@pytest.fixture
def viewer(org, make_member):
    from accounts.capabilities import Role

    return make_member(org, Role.VIEWER)


@pytest.fixture
def analyst_client(client, analyst):
    client.force_login(analyst)
    return client


def make_watchlist(org, name="Portfolio", entities=None):
    from sentiment.services import watchlist_create, watchlist_entity_add

    watchlist = watchlist_create(organization=org, name=name)
    for key, company, aliases in entities or [("NWC", "Northwind Capital", ["Northwind"]),
                                              ("CTSO", "Contoso", []), ("FAB", "Fabrikam Motors", ["Fabrikam"])]:
        watchlist_entity_add(watchlist=watchlist, key=key, name=company, aliases=aliases)
    return watchlist


@pytest.fixture
def watchlist(org):
    return make_watchlist(org)


def p(label: str, strength: float = 0.9) -> dict[str, float]:
    rest = (1 - strength) / 2
    return {name: (strength if name == label else rest) for name in ("negative", "neutral", "positive")}


def write_scored(org, texts_labels: list[tuple[str, str]], *, published_at: datetime | None = None, source=None,
                 model=None, strength: float = 0.9):
    """Ingest texts, then store scores with the given labels through services.scores_write (no model run), as
    the scoring task would; returns the documents."""
    from django_scopes import scope

    from sentiment import services
    from sentiment.models import BatchStatus, Document, ScoringBatch, SentimentModel

    model = model or SentimentModel.objects.get_or_create(
        name="fixed", version="1", defaults={"path": "/nonexistent", "sha256": "0" * 64,
                                             "manifest": {"labels": ["negative", "neutral", "positive"]}})[0]
    source = source or services.source_builtin(organization=org, kind="api")
    items = [services.IngestItem(text=t, published_at=published_at) for t, _ in texts_labels]
    result = services.documents_ingest(organization=org, source=source, items=items)
    ids = [r.document_id for r in result.results]
    scored = [services.ScoredText(document_id=i, label=label, probabilities=p(label, strength),
                                  attributions=[[0, 3, 0.8]])
              for i, (_, label) in zip(ids, texts_labels, strict=True)]
    services.scores_write(organization=org, batch_id=result.batch.pk, scored=scored, model=model,
                          watchlist=services.entity_dictionary(organization=org))
    ScoringBatch.objects.filter(pk=result.batch.pk).update(status=BatchStatus.SUCCEEDED)
    with scope(organization=org):
        return list(Document.objects.filter(pk__in=ids).order_by("pk"))
