"""Saving and loading sentiment models through the real from_pretrained path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sentiment.ml.manifest import (
    MANIFEST_FILE,
    WEIGHTS_FILE,
    ModelLoadError,
    SentimentManifest,
    file_sha256,
    load_model,
    read_manifest,
)
from sentiment.ml.tiny_model import build_tiny_model


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "model"
    build_tiny_model(out_dir=path)
    return path


def test_manifest_round_trip(tiny_dir: Path) -> None:
    manifest = read_manifest(model_dir=tiny_dir)
    assert manifest.labels == ("negative", "neutral", "positive")
    assert manifest.weights_sha256 == file_sha256(tiny_dir / WEIGHTS_FILE)
    assert SentimentManifest.from_dict(manifest.to_dict()) == manifest
    loaded = load_model(model_dir=tiny_dir, expected_sha256=manifest.weights_sha256, device="cpu")
    assert loaded.manifest == manifest
    assert loaded.model.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    assert not loaded.model.training
    assert loaded.tokenizer.is_fast


def test_expected_checksum_mismatch_is_a_clear_error(tiny_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="checksum mismatch.*was expected"):
        load_model(model_dir=tiny_dir, expected_sha256="0" * 64, device="cpu")


def test_modified_weights_are_detected(tmp_path: Path) -> None:
    build_tiny_model(out_dir=tmp_path)
    with (tmp_path / WEIGHTS_FILE).open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelLoadError, match="modified or corrupted"):
        load_model(model_dir=tmp_path, device="cpu")


def test_missing_directory_and_manifest(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="model directory not found"):
        load_model(model_dir=tmp_path / "nope", device="cpu")
    with pytest.raises(ModelLoadError, match=f"no {MANIFEST_FILE}"):
        load_model(model_dir=tmp_path, device="cpu")


def test_unknown_labels_are_rejected(tmp_path: Path) -> None:
    build_tiny_model(out_dir=tmp_path)
    path = tmp_path / MANIFEST_FILE
    data = json.loads(path.read_text())
    data["labels"] = ["bearish", "neutral", "bullish"]
    path.write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="unknown labels"):
        load_model(model_dir=tmp_path, device="cpu")


def test_config_labels_must_match(tmp_path: Path) -> None:
    build_tiny_model(out_dir=tmp_path)
    config_path = tmp_path / "config.json"
    config = json.loads(config_path.read_text())
    config["id2label"] = {"0": "positive", "1": "neutral", "2": "negative"}
    config["label2id"] = {"positive": 0, "neutral": 1, "negative": 2}
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="config labels"):
        load_model(model_dir=tmp_path, device="cpu")
