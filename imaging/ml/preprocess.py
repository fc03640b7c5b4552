"""Turn decoded pixel arrays of any size into the normalised tensor batch a model expects."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from imaging.ml.manifest import ModelManifest


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) float in [0, 1] -> float32 tensor (C, H, W), clamped to [0, 1].

    C is 1 for grayscale (the model's three channels are made after resizing, so the clamp and the resize
    touch one plane, not three copies of it) and 3 for colour."""
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        array = array[:, :, :3] if array.shape[2] != 1 else array[:, :, 0]
    if array.ndim == 2:
        tensor = torch.from_numpy(np.ascontiguousarray(array))[None]
    elif array.ndim == 3 and array.shape[2] == 3:
        tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
    else:
        raise ValueError(f"expected an image of shape (H, W) or (H, W, 3), got {array.shape}")
    if array.shape[0] < 2 or array.shape[1] < 2:
        raise ValueError(f"image of shape {array.shape} is too small")
    if not np.isfinite(array).all():
        raise ValueError("image contains NaN or infinite values")
    return tensor.clamp(0.0, 1.0)


def resize_square(tensor: torch.Tensor, *, size: int) -> torch.Tensor:
    """(C, H, W) -> (C, size, size); antialiased so downscaling large scans does not alias small structures."""
    if tensor.shape[-2:] == (size, size):
        return tensor.contiguous()
    return F.interpolate(tensor[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


def normalise(batch: torch.Tensor, *, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Per-channel (x - mean) / std on a (N, 3, S, S) or (N, D, 3, S, S) batch."""
    shape = (3, 1, 1)
    mean_t = torch.tensor(mean, dtype=batch.dtype, device=batch.device).view(shape)
    std_t = torch.tensor(std, dtype=batch.dtype, device=batch.device).view(shape)
    return (batch - mean_t) / std_t


def resize_images(*, images: Sequence[np.ndarray], input_size: int) -> torch.Tensor:
    """Un-normalised (N, 3, S, S) batch in [0, 1]; the aspect ratio is not kept (heatmaps map back the same way)."""
    if not images:
        return torch.empty(0, 3, input_size, input_size)
    return torch.stack([resize_square(image_to_tensor(image), size=input_size).expand(3, -1, -1) for image in images])


def preprocess_images(*, images: Sequence[np.ndarray], manifest: ModelManifest) -> torch.Tensor:
    """Arrays (H, W) or (H, W, 3) float in [0, 1] of any size -> normalised batch (N, 3, S, S) per the manifest."""
    batch = resize_images(images=images, input_size=manifest.input_size)
    return normalise(batch, mean=manifest.mean, std=manifest.std)
