"""Device selection, per-process model cache and the autocast context used by inference."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import torch

from imaging.ml.manifest import LoadedModel, load_model

_cache: dict[tuple[int, str, str, str], LoadedModel] = {}
_cache_lock = threading.Lock()


def select_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def get_model(*, model_dir: str | Path, sha256: str, device: torch.device | None = None) -> LoadedModel:
    """Load a model once per worker process and return the cached instance afterwards.

    Keyed by process id as well, so a child forked after the parent loaded a model loads its own copy (CUDA
    state does not survive fork). Raises ModelLoadError when the directory or checksum is wrong.
    """
    device = device or select_device()
    key = (os.getpid(), str(Path(model_dir).resolve()), sha256.lower(), str(device))
    with _cache_lock:
        loaded = _cache.get(key)
        if loaded is None:
            loaded = load_model(model_dir=model_dir, expected_sha256=sha256, device=device)
            _cache[key] = loaded
        return loaded


def clear_model_cache() -> None:
    """Forget cached models (tests; a worker reloading after a model registry change)."""
    with _cache_lock:
        _cache.clear()


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 on GPUs that support it, else fp16 on CUDA; None (full precision) on CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@contextlib.contextmanager
def inference_context(device: torch.device) -> Iterator[None]:
    """Mixed-precision autocast on CUDA; a no-op on CPU (CPU autocast is slower than fp32 for these convs)."""
    dtype = autocast_dtype(device)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
