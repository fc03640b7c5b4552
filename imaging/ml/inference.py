"""Batched prediction with Grad-CAM explanations (images) and slice attention (series)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from imaging.ml.architectures import SliceClassifier
from imaging.ml.gradcam import gradcam, resize_heatmaps
from imaging.ml.manifest import LoadedModel
from imaging.ml.preprocess import preprocess_images
from imaging.ml.runtime import inference_context


@dataclass(frozen=True)
class ImagePrediction:
    """Class probabilities, the predicted label and a [0, 1] heatmap at the original image size (or None)."""

    probabilities: dict[str, float]
    predicted: str
    heatmap: np.ndarray | None


@dataclass(frozen=True)
class SeriesPrediction:
    """Study-level probabilities, per-slice attention (sums to 1) and heatmaps for the top-k attended slices."""

    probabilities: dict[str, float]
    predicted: str
    slice_attention: list[float]
    slice_heatmaps: dict[int, np.ndarray]


def _to_device(batch: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a batch to the model's device in the loaded models' channels_last layout (see manifest.load_model)."""
    # pinned host memory makes a copy to the GPU truly asynchronous
    batch = batch.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else batch.to(device)
    return batch.contiguous(memory_format=torch.channels_last) if batch.dim() == 4 else batch


def _label_indices(loaded: LoadedModel, target: str | Sequence[str] | None, count: int) -> torch.Tensor | None:
    if target is None:
        return None
    names = [target] * count if isinstance(target, str) else list(target)
    if len(names) != count:
        raise ValueError(f"got {len(names)} target labels for {count} inputs")
    labels = loaded.manifest.labels
    unknown = sorted({name for name in names if name not in labels})
    if unknown:
        raise ValueError(f"unknown target label(s) {', '.join(unknown)}; the model predicts {', '.join(labels)}")
    return torch.tensor([labels.index(name) for name in names], dtype=torch.long)


def _probabilities(loaded: LoadedModel, logits: torch.Tensor) -> tuple[np.ndarray, list[dict[str, float]], list[str]]:
    probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
    labels = loaded.manifest.labels
    as_dicts = [{label: float(p) for label, p in zip(labels, row, strict=True)} for row in probs]
    return probs, as_dicts, [labels[int(i)] for i in probs.argmax(axis=1)]


def predict_images(*, loaded: LoadedModel, images: list[np.ndarray], batch_size: int = 16, explain: bool = True,
                   target_label: str | Sequence[str] | None = None) -> list[ImagePrediction]:
    """Classify images (arrays (H, W) or (H, W, 3) in [0, 1], any size) in batches.

    With `explain`, each prediction carries a Grad-CAM heatmap resized to its image's shape, for the predicted
    class or for `target_label` (one label for all images, or one per image).
    """
    if loaded.manifest.task != "image":
        raise ValueError(f"model '{loaded.manifest.name}' is a {loaded.manifest.task} model; use predict_series")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    targets = _label_indices(loaded, target_label, len(images))
    results: list[ImagePrediction] = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        batch = _to_device(preprocess_images(images=chunk, manifest=loaded.manifest), loaded.device)
        heatmaps: list[np.ndarray | None] = [None] * len(chunk)
        if explain:
            cam = gradcam(model=loaded.model, layer=loaded.manifest.gradcam_layer, inputs=batch,
                          targets=None if targets is None else targets[start:start + batch_size],
                          context=lambda: inference_context(loaded.device))
            logits = cam.logits
            heatmaps = resize_heatmaps(heatmaps=cam.heatmaps, shapes=[np.shape(image)[:2] for image in chunk])
        else:
            with torch.inference_mode(), inference_context(loaded.device):
                logits = loaded.model(batch)
        _, prob_dicts, predicted = _probabilities(loaded, logits)
        results.extend(ImagePrediction(probabilities=p, predicted=label, heatmap=h)
                       for p, label, h in zip(prob_dicts, predicted, heatmaps, strict=True))
    return results


def predict_series(*, loaded: LoadedModel, slices: list[np.ndarray], explain: bool = True, top_k: int = 3,
                   target_label: str | None = None) -> SeriesPrediction:
    """Classify one series (slices in order) and report per-slice attention.

    With `explain`, Grad-CAM heatmaps (at each slice's original shape) are returned for the `top_k` slices with
    the highest attention, keyed by slice index: from the model's slice head when it has one (see SeriesModel),
    else through the whole model.
    """
    if loaded.manifest.task != "series":
        raise ValueError(f"model '{loaded.manifest.name}' is a {loaded.manifest.task} model; use predict_images")
    if not slices:
        raise ValueError("a series needs at least one slice")
    batch = _to_device(preprocess_images(images=slices, manifest=loaded.manifest)[None], loaded.device)
    targets = _label_indices(loaded, target_label, 1)
    has_slice_head = getattr(loaded.model, "slice_head", None) is not None
    heatmaps = None
    if explain and not has_slice_head:
        # models saved before the slice head: Grad-CAM of the study score through the Transformer (all slices)
        cam = gradcam(model=loaded.model, layer=loaded.manifest.gradcam_layer, inputs=batch, targets=targets,
                      context=lambda: inference_context(loaded.device))
        logits, attention, heatmaps = cam.logits, cam.outputs[0], cam.heatmaps
    else:
        with torch.inference_mode(), inference_context(loaded.device):
            logits, attention = loaded.model(batch)
    _, prob_dicts, predicted = _probabilities(loaded, logits)
    weights = attention[0].float().cpu().numpy()
    top = [int(i) for i in np.argsort(-weights, kind="stable")[: max(top_k, 0)]] if explain else []
    if top and has_slice_head:
        # the slice head explains the study's class (or the requested one) on the attended slices only
        target = int(logits[0].argmax()) if targets is None else int(targets[0])
        cam = gradcam(model=SliceClassifier(loaded.model), layer=loaded.manifest.gradcam_layer, inputs=batch[0, top],
                      targets=torch.full((len(top),), target, dtype=torch.long),
                      context=lambda: inference_context(loaded.device))
        heatmaps = cam.heatmaps
    elif heatmaps is not None:
        heatmaps = heatmaps[top]
    slice_heatmaps: dict[int, np.ndarray] = {}
    if top:
        maps = resize_heatmaps(heatmaps=heatmaps, shapes=[np.shape(slices[i])[:2] for i in top])
        slice_heatmaps = dict(zip(top, maps, strict=True))
    return SeriesPrediction(probabilities=prob_dicts[0], predicted=predicted[0],
                            slice_attention=[float(w) for w in weights], slice_heatmaps=slice_heatmaps)
