"""Worker runtime: device choice, a per-process model cache and mixed precision on CUDA."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import torch

from sentiment.ml.manifest import LoadedSentimentModel, load_model

_cache: dict[tuple[str, str], LoadedSentimentModel] = {}
_cache_pid: int | None = None
_cache_lock = threading.Lock()


def select_device(*, prefer: str | None = None) -> torch.device:
    """CUDA when present, else CPU; `prefer` ('cpu', 'cuda', 'cuda:1') overrides, failing clearly if unavailable."""
    if prefer:
        device = torch.device(prefer)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {prefer!r} was requested but CUDA is not available on this machine.")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def get_model(*, model_dir: Path | str, sha256: str, device: str | None = None) -> LoadedSentimentModel:
    """Load a verified model once per process and return the cached instance on later calls.

    The cache is keyed by resolved path and checksum, so a new version (new sha256) loads fresh. It is emptied
    when the process id changes: a forked worker never reuses a model (or CUDA context) loaded by its parent.
    """
    global _cache_pid
    key = (str(Path(model_dir).resolve()), sha256.lower())
    with _cache_lock:
        if _cache_pid != os.getpid():
            _cache.clear()
            _cache_pid = os.getpid()
        loaded = _cache.get(key)
        if loaded is None:
            loaded = load_model(model_dir=model_dir, expected_sha256=sha256, device=select_device(prefer=device))
            _cache[key] = loaded
        return loaded


def clear_model_cache() -> None:
    """Forget every cached model (tests, or a worker told to reload)."""
    with _cache_lock:
        _cache.clear()


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 on CUDA devices that support it, fp16 on older CUDA devices, None (full precision) elsewhere."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@contextlib.contextmanager
def autocast_for(device: torch.device) -> Iterator[None]:
    """Mixed-precision autocast on CUDA; a no-op on CPU, where autocast would only slow BERT down."""
    dtype = autocast_dtype(device)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type="cuda", dtype=dtype):
        yield
