"""Operator commands: train_imaging / evaluate_imaging on customer-style CSVs, idempotent demo model build."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


def test_train_then_evaluate_from_csvs(settings, tmp_path):
    from imaging.ml.phantoms import write_image_dataset
    from imaging.models import ImagingModel

    settings.IMAGING_MODELS_DIR = tmp_path / "models"
    train_csv = write_image_dataset(out_dir=tmp_path / "train", n=12, size=48, seed=1)
    eval_csv = write_image_dataset(out_dir=tmp_path / "eval", n=6, size=48, seed=2)
    out = StringIO()
    call_command("train_imaging", "--train", str(train_csv), "--eval", str(eval_csv), "--name", "customer-model",
                 "--arch", "tiny", "--input-size", "32", "--epochs", "1", "--batch-size", "4", stdout=out,
                 stderr=StringIO())
    text = out.getvalue()
    for needle in ("accuracy", "ROC AUC", "precision", "recall", "f1", "lesion", "no_lesion", "sha256"):
        assert needle in text, needle
    model = ImagingModel.objects.get(name="customer-model")
    assert model.is_active and model.version == "v1" and model.task == "image"
    assert (settings.IMAGING_MODELS_DIR / model.path / "weights.pt").is_file()
    assert model.manifest["training_data"]["train_counts"] == {"lesion": 6, "no_lesion": 6}

    out = StringIO()
    call_command("evaluate_imaging", "--data", str(eval_csv), stdout=out)
    metrics = json.loads(out.getvalue())
    assert metrics["n"] == 6 and set(metrics["per_class"]) == {"lesion", "no_lesion"}
    assert metrics["model"]["sha256"] == model.sha256 and "roc_auc" in metrics
    with pytest.raises(CommandError, match="No such model"):
        call_command("evaluate_imaging", "--data", str(eval_csv), "--model", "nope", stdout=StringIO())


def test_train_reports_a_bad_csv_with_its_line(settings, tmp_path):
    settings.IMAGING_MODELS_DIR = tmp_path / "models"
    bad = tmp_path / "train.csv"
    bad.write_text("path,label\nmissing.png,lesion\n")
    with pytest.raises(CommandError, match="line 2"):
        call_command("train_imaging", "--train", str(bad), "--eval", str(bad), "--name", "x", "--arch", "tiny",
                     stdout=StringIO(), stderr=StringIO())


def test_build_demo_models_builds_once_then_reuses(settings, tmp_path, monkeypatch):
    from imaging.ml import demo
    from imaging.models import ImagingModel
    from tests.imaging.tiny_models import save_tiny_models

    settings.IMAGING_MODELS_DIR = tmp_path / "models"
    settings.VAR_DIR = tmp_path
    calls = []

    def fake_build(*, out_root, data_root, progress=None, load_pixels=None):
        calls.append(out_root)
        save_tiny_models(out_root)

    monkeypatch.setattr(demo, "build_demo_models", fake_build)
    call_command("build_demo_imaging_models", stdout=StringIO())
    assert len(calls) == 1
    assert set(ImagingModel.objects.filter(is_active=True, is_demo=True).values_list("task", flat=True)) == {
        "image", "series"}
    out = StringIO()
    call_command("build_demo_imaging_models", stdout=out)
    assert len(calls) == 1 and "installed" in out.getvalue()
    # a fresh database with the models already on disk registers them without training again
    ImagingModel.objects.all().delete()
    call_command("build_demo_imaging_models", stdout=StringIO())
    assert len(calls) == 1 and ImagingModel.objects.filter(is_active=True).count() == 2
    # a series model saved before slice heads (older recipe) is built anew
    series_manifest = settings.IMAGING_MODELS_DIR / "tiny-series" / "v1" / "manifest.json"
    manifest = json.loads(series_manifest.read_text())
    del manifest["arch_params"]["slice_head"]
    series_manifest.write_text(json.dumps(manifest))
    call_command("build_demo_imaging_models", stdout=StringIO())
    assert len(calls) == 2
