"""End-to-end training on a tiny BERT: CSV validation, versioned save, manifest metrics, evaluate_csv."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentiment.ml.corpus import write_splits
from sentiment.ml.evaluate import evaluate_csv
from sentiment.ml.labelled_data import DatasetError
from sentiment.ml.manifest import ModelLoadError, load_model, read_manifest
from sentiment.ml.tiny_model import build_tiny_model
from sentiment.ml.train import TrainConfig, TrainProgress, train


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("base") / "tiny"
    build_tiny_model(out_dir=path, seed=1)
    return path


@pytest.fixture(scope="module")
def splits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_splits(out_dir=tmp_path_factory.mktemp("data"), n_train=90, n_eval=30, n_test=30, seed=2)


def _config(base_dir: Path, splits: dict[str, Path], out_root: Path, **overrides: object) -> TrainConfig:
    values: dict[str, object] = {
        "train_csv": splits["train"], "eval_csv": splits["eval"], "test_csv": splits["test"], "name": "tiny-run",
        "out_root": out_root, "base": base_dir, "epochs": 1, "batch_size": 16, "lr": 1e-3, "max_length": 48,
        "version": "v1",
    }
    values.update(overrides)
    return TrainConfig(**values)  # type: ignore[arg-type]


def test_one_epoch_end_to_end(base_dir: Path, splits: dict[str, Path], tmp_path: Path) -> None:
    reports: list[TrainProgress] = []
    result = train(config=_config(base_dir, splits, tmp_path), progress=reports.append)
    assert result.model_dir == tmp_path / "tiny-run" / "v1"
    assert sorted(p.name for p in (tmp_path / "tiny-run").iterdir()) == ["v1"]  # no staging leftovers
    assert [r.step for r in reports if r.stage == "train"] == list(range(1, 7))  # 90 rows / 16 per batch
    assert [r.stage for r in reports][-3:] == ["evaluate", "evaluate", "save"]
    assert read_manifest(model_dir=result.model_dir) == result.manifest
    assert result.manifest.weights_sha256 != read_manifest(model_dir=base_dir).weights_sha256
    assert result.metrics["training"]["examples"] == 90
    assert result.metrics["eval"]["n"] == 30 and result.metrics["test"]["n"] == 30
    loaded = load_model(model_dir=result.model_dir, expected_sha256=result.manifest.weights_sha256, device="cpu")
    assert evaluate_csv(loaded=loaded, csv_path=splits["test"], batch_size=7) == (
        result.metrics["test"])


def test_training_reduces_the_loss(base_dir: Path, splits: dict[str, Path], tmp_path: Path) -> None:
    reports: list[TrainProgress] = []
    # A random tiny BERT sits at ln(3) for a few epochs before it starts fitting; a high lr shortens that.
    train(config=_config(base_dir, splits, tmp_path, epochs=6, lr=1e-2), progress=reports.append)
    epoch_losses = [r.loss for r in reports if r.stage == "train" and r.step % 6 == 0]
    assert len(epoch_losses) == 6
    assert epoch_losses[-1] < epoch_losses[0] - 0.1


def test_existing_version_is_never_overwritten(base_dir: Path, splits: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "tiny-run" / "v1").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="immutable"):
        train(config=_config(base_dir, splits, tmp_path))


def test_bad_csv_is_reported_before_any_training(base_dir: Path, splits: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "train.csv"
    bad.write_text("text,label\nProfit rose,bullish\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="line 2: 'bullish'"):
        train(config=_config(base_dir, splits, tmp_path, train_csv=bad))
    assert not (tmp_path / "tiny-run").exists()


def test_config_errors_are_clear(base_dir: Path, splits: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="model name"):
        train(config=_config(base_dir, splits, tmp_path, name="My Model"))
    with pytest.raises(ModelLoadError, match="base model directory not found"):
        train(config=_config(base_dir, splits, tmp_path, base=tmp_path / "missing"))
    with pytest.raises(ValueError, match="only 2 encoder layers"):
        train(config=_config(base_dir, splits, tmp_path, freeze_layers=3))
