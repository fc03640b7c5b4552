"""Per-process model cache, device choice and autocast."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sentiment.ml import runtime
from sentiment.ml.manifest import ModelLoadError
from sentiment.ml.tiny_model import build_tiny_model


def test_get_model_caches_per_path_and_checksum(tmp_path: Path) -> None:
    manifest = build_tiny_model(out_dir=tmp_path / "a")
    runtime.clear_model_cache()
    first = runtime.get_model(model_dir=tmp_path / "a", sha256=manifest.weights_sha256, device="cpu")
    again = runtime.get_model(model_dir=str(tmp_path / "a"), sha256=manifest.weights_sha256.upper(), device="cpu")
    assert again is first
    runtime.clear_model_cache()
    assert runtime.get_model(model_dir=tmp_path / "a", sha256=manifest.weights_sha256, device="cpu") is not first
    with pytest.raises(ModelLoadError, match="checksum mismatch"):
        runtime.get_model(model_dir=tmp_path / "a", sha256="f" * 64, device="cpu")


def test_cache_is_emptied_in_a_forked_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = build_tiny_model(out_dir=tmp_path)
    parent = runtime.get_model(model_dir=tmp_path, sha256=manifest.weights_sha256, device="cpu")
    monkeypatch.setattr(runtime, "_cache_pid", -1)  # as if the cache was filled by a parent process
    assert runtime.get_model(model_dir=tmp_path, sha256=manifest.weights_sha256, device="cpu") is not parent


def test_device_selection_and_autocast() -> None:
    assert runtime.select_device(prefer="cpu") == torch.device("cpu")
    assert runtime.autocast_dtype(torch.device("cpu")) is None
    if torch.cuda.is_available():
        assert runtime.select_device().type == "cuda"
        assert runtime.autocast_dtype(torch.device("cuda")) in (torch.bfloat16, torch.float16)
    else:
        assert runtime.select_device() == torch.device("cpu")
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            runtime.select_device(prefer="cuda")
