"""Operator commands: train_sentiment (from a tiny base), evaluate_sentiment (JSON), build_demo_sentiment_model
(idempotent: registers a built model, never rebuilds one that exists)."""

from __future__ import annotations

import io
import json
import shutil

import pytest
from django.core.management import CommandError, call_command

from sentiment.ml.corpus import write_splits
from sentiment.models import SentimentModel

pytestmark = pytest.mark.django_db


@pytest.fixture
def splits(tmp_path):
    return write_splits(out_dir=tmp_path / "data", n_train=60, n_eval=30, n_test=30, seed=3)


def test_train_prints_metrics_saves_registers_and_evaluates(settings, tmp_path, tiny_sentiment_dir, splits):
    settings.SENTIMENT_MODELS_DIR = tmp_path / "models"
    out = io.StringIO()
    call_command("train_sentiment", "--train", str(splits["train"]), "--eval", str(splits["eval"]), "--name",
                 "acme-news", "--base", str(tiny_sentiment_dir / "tiny-test" / "seed-0"), "--epochs", "1",
                 "--model-version", "v1", stdout=out, stderr=io.StringIO())
    text = out.getvalue()
    for needle in ("accuracy", "macro F1", "weighted F1", "negative", "neutral", "positive", "precision", "recall",
                   "registered it as the active model"):
        assert needle in text
    model = SentimentModel.objects.get(name="acme-news", version="v1")
    assert model.is_active and (settings.SENTIMENT_MODELS_DIR / "acme-news" / "v1" / "manifest.json").is_file()
    assert model.manifest["metrics"]["eval"]["n"] == 30
    out = io.StringIO()
    call_command("evaluate_sentiment", "--data", str(splits["test"]), stdout=out)
    metrics = json.loads(out.getvalue())
    assert metrics["n"] == 30 and set(metrics["per_class"]) == {"negative", "neutral", "positive"}
    assert metrics["model"]["name"] == "acme-news" and 0 <= metrics["macro_f1"] <= 1
    # A second model does not replace the active one unless asked.
    call_command("train_sentiment", "--train", str(splits["train"]), "--eval", str(splits["eval"]), "--name",
                 "acme-news", "--base", str(tiny_sentiment_dir / "tiny-test" / "seed-0"), "--epochs", "1",
                 "--model-version", "v2", stdout=io.StringIO(), stderr=io.StringIO())
    assert SentimentModel.objects.get(is_active=True).version == "v1"
    out = io.StringIO()
    call_command("evaluate_sentiment", "--model", "acme-news:v2", "--data", str(splits["test"]), stdout=out)
    assert json.loads(out.getvalue())["model"]["version"] == "v2"


def test_commands_reject_bad_input_clearly(settings, tmp_path, splits):
    settings.SENTIMENT_MODELS_DIR = tmp_path / "models"
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine,positive\nodd,bullish\n")
    with pytest.raises(CommandError, match="bullish"):
        call_command("train_sentiment", "--train", str(bad), "--eval", str(splits["eval"]), "--name", "x",
                     stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="file not found"):
        call_command("evaluate_sentiment", "--data", str(tmp_path / "missing.csv"))
    with pytest.raises(CommandError, match="No sentiment model"):
        call_command("evaluate_sentiment", "--data", str(splits["test"]), "--model", "nope")


def test_build_demo_registers_an_existing_build_and_is_idempotent(settings, tmp_path, tiny_sentiment_dir):
    settings.SENTIMENT_MODELS_DIR = tmp_path / "models"
    target = settings.SENTIMENT_MODELS_DIR / "demo-financial-sentiment" / "20240101t000000z"
    shutil.copytree(tiny_sentiment_dir / "tiny-test" / "seed-0", target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.update(name="demo-financial-sentiment", version=target.name, demo=True)
    (target / "manifest.json").write_text(json.dumps(manifest))
    out = io.StringIO()
    call_command("build_demo_sentiment_model", stdout=out)
    assert "Registered the demo sentiment model" in out.getvalue()
    model = SentimentModel.objects.get(name="demo-financial-sentiment")
    assert model.is_active and model.is_demo
    out = io.StringIO()
    call_command("build_demo_sentiment_model", stdout=out)
    assert "already built; nothing to do" in out.getvalue()
    assert SentimentModel.objects.count() == 1
