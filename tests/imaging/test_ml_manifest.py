"""Saving and loading models: manifest round trip, checksums, clear errors, per-process cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from imaging.ml.architectures import build_model, gradcam_layer_for
from imaging.ml.manifest import ModelLoadError, ModelManifest, file_sha256, load_model, save_model
from imaging.ml.runtime import clear_model_cache, get_model, inference_context, select_device

torch.set_num_threads(2)


def _manifest(task: str = "image") -> ModelManifest:
    return ModelManifest(
        name="tiny-test", version="v1", task=task, arch="tiny", labels=["lesion", "no_lesion"], input_size=64,
        mean=[0.3, 0.3, 0.3], std=[0.2, 0.2, 0.2], gradcam_layer=gradcam_layer_for(task=task, arch="tiny"),
        metrics={"accuracy": 0.5}, training_data={"train_counts": {"lesion": 2}}, intended_use="tests", demo=True,
        arch_params={"d_model": 32, "layers": 1, "heads": 2} if task == "series" else {},
    )


def _saved(tmp_path: Path, task: str = "image") -> tuple[torch.nn.Module, ModelManifest, Path]:
    torch.manual_seed(0)
    manifest = _manifest(task)
    model = build_model(task=task, arch="tiny", num_classes=2, arch_params=manifest.arch_params).eval()
    saved = save_model(model=model, manifest=manifest, out_dir=tmp_path / "model")
    return model, saved, tmp_path / "model"


def test_manifest_json_round_trip() -> None:
    manifest = _manifest()
    assert ModelManifest.from_json(manifest.to_json()) == manifest
    data = json.loads(manifest.to_json())
    assert data["torch_version"] == torch.__version__ and data["created_at"].endswith("+00:00")


@pytest.mark.parametrize("task", ["image", "series"])
def test_save_and_load_round_trip(tmp_path: Path, task: str) -> None:
    model, saved, directory = _saved(tmp_path, task)
    assert saved.sha256 == file_sha256(directory / "weights.pt") and len(saved.sha256) == 64
    assert sorted(p.name for p in directory.iterdir()) == ["manifest.json", "weights.pt"]
    loaded = load_model(model_dir=directory, expected_sha256=saved.sha256, device="cpu")
    assert loaded.manifest == saved and loaded.device == torch.device("cpu")
    assert not loaded.model.training and not any(p.requires_grad for p in loaded.model.parameters())
    x = torch.rand(2, 4, 3, 64, 64) if task == "series" else torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        before, after = model(x), loaded.model(x)
    before, after = (before[0], after[0]) if task == "series" else (before, after)
    torch.testing.assert_close(before, after)


def test_checksum_mismatch_raises(tmp_path: Path) -> None:
    _, saved, directory = _saved(tmp_path)
    with pytest.raises(ModelLoadError, match="checksum mismatch.*registry"):
        load_model(model_dir=directory, expected_sha256="0" * 64)
    with (directory / "weights.pt").open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(ModelLoadError, match="checksum mismatch"):
        load_model(model_dir=directory)


def test_missing_directory_and_files_raise(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(model_dir=tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"manifest\.json is missing"):
        load_model(model_dir=tmp_path / "empty")
    _, _, directory = _saved(tmp_path)
    (directory / "weights.pt").unlink()
    with pytest.raises(ModelLoadError, match=r"weights\.pt is missing"):
        load_model(model_dir=directory)


def test_unknown_arch_and_broken_manifest_raise(tmp_path: Path) -> None:
    _, _, directory = _saved(tmp_path)
    data = json.loads((directory / "manifest.json").read_text())
    (directory / "manifest.json").write_text(json.dumps({**data, "arch": "vgg99"}))
    with pytest.raises(ModelLoadError, match="unknown architecture 'vgg99'"):
        load_model(model_dir=directory)
    del data["labels"]
    (directory / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelLoadError, match="missing fields: labels"):
        load_model(model_dir=directory)


def test_get_model_loads_once_per_process(tmp_path: Path) -> None:
    clear_model_cache()
    _, saved, directory = _saved(tmp_path)
    first = get_model(model_dir=directory, sha256=saved.sha256)
    assert get_model(model_dir=directory, sha256=saved.sha256.upper()) is first
    with pytest.raises(ModelLoadError):
        get_model(model_dir=directory, sha256="f" * 64)
    clear_model_cache()
    assert get_model(model_dir=directory, sha256=saved.sha256) is not first
    clear_model_cache()


def test_device_selection_and_cpu_context() -> None:
    device = select_device()
    assert device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    with inference_context(torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")
