"""Evaluate a loaded model on a labelled CSV: classification metrics plus the Grad-CAM pointing game."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from imaging.ml.datasets import (
    LabelledDataset,
    PixelLoader,
    check_known_labels,
    load_row_masks,
    load_row_pixels,
    read_dataset_csv,
)
from imaging.ml.inference import predict_images, predict_series
from imaging.ml.manifest import LoadedModel
from imaging.ml.metrics import classification_metrics, pointing_hit

NEGATIVE_LABELS = frozenset({"no_lesion", "normal", "negative", "no_finding", "healthy", "benign"})


def positive_label(labels: list[str]) -> str | None:
    """For a binary task, the label that is not a 'normal' one (AUC is reported for it); else None."""
    if len(labels) != 2:
        return None
    others = [label for label in labels if label.lower() not in NEGATIVE_LABELS]
    return others[0] if len(others) == 1 else labels[-1]


def _image_pass(*, loaded: LoadedModel, dataset: LabelledDataset, load_pixels: PixelLoader, batch_size: int,
                explain: bool) -> tuple[np.ndarray, list[bool]]:
    labels = loaded.manifest.labels
    probabilities, hits = [], []
    chunk = max(batch_size * 4, 1)  # bounded memory: decode a few batches at a time
    for start in range(0, len(dataset.rows), chunk):
        rows = dataset.rows[start:start + chunk]
        images = [load_row_pixels(dataset=dataset, row=row, load_pixels=load_pixels)[0] for row in rows]
        # explain the true class: the pointing game asks whether the evidence for the lesion is on the lesion
        predictions = predict_images(loaded=loaded, images=images, batch_size=batch_size, explain=explain,
                                     target_label=[row.label for row in rows] if explain else None)
        for row, prediction in zip(rows, predictions, strict=True):
            probabilities.append([prediction.probabilities[label] for label in labels])
            masks = load_row_masks(dataset=dataset, row=row, load_pixels=load_pixels) if explain else None
            if masks is not None and masks[0].any():
                hits.append(pointing_hit(heatmap=prediction.heatmap, mask=masks[0]))
    return np.asarray(probabilities), hits


def _series_pass(*, loaded: LoadedModel, dataset: LabelledDataset, load_pixels: PixelLoader,
                 explain: bool) -> tuple[np.ndarray, list[bool], list[bool]]:
    labels = loaded.manifest.labels
    probabilities, hits, attention_hits = [], [], []
    for row in dataset.rows:
        slices = load_row_pixels(dataset=dataset, row=row, load_pixels=load_pixels)
        masks = load_row_masks(dataset=dataset, row=row, load_pixels=load_pixels) if explain else None
        has_lesion = masks is not None and any(mask.any() for mask in masks)
        prediction = predict_series(loaded=loaded, slices=slices, explain=has_lesion, top_k=1,
                                    target_label=row.label if has_lesion else None)
        probabilities.append([prediction.probabilities[label] for label in labels])
        if has_lesion:
            if len(masks) != len(slices):
                raise ValueError(f"{dataset.csv_path.name} line {row.line}: {len(masks)} masks, {len(slices)} slices")
            # study-level pointing: the most attended slice must show the lesion and its heatmap must point at it
            top, heatmap = next(iter(prediction.slice_heatmaps.items()))
            attention_hits.append(bool(masks[top].any()))
            hits.append(bool(masks[top].any()) and pointing_hit(heatmap=heatmap, mask=masks[top]))
    return np.asarray(probabilities), hits, attention_hits


def evaluate_dataset(*, loaded: LoadedModel, dataset: LabelledDataset, load_pixels: PixelLoader,
                     batch_size: int = 16, progress: Callable[[str], None] | None = None) -> dict:
    """Metrics of `loaded` on a validated dataset; adds the pointing game when rows carry lesion masks."""
    labels = loaded.manifest.labels
    check_known_labels(dataset=dataset, labels=labels)
    explain = any(row.mask_path is not None for row in dataset.rows)
    y_true = [labels.index(row.label) for row in dataset.rows]
    if dataset.task == "series":
        probabilities, hits, attention_hits = _series_pass(loaded=loaded, dataset=dataset, load_pixels=load_pixels,
                                                           explain=explain)
    else:
        probabilities, hits = _image_pass(loaded=loaded, dataset=dataset, load_pixels=load_pixels,
                                          batch_size=batch_size, explain=explain)
        attention_hits = []
    metrics = classification_metrics(y_true=y_true, probabilities=probabilities, labels=labels,
                                     positive_label=positive_label(labels))
    metrics["pointing_game"] = float(np.mean(hits)) if hits else None
    metrics["pointing_game_n"] = len(hits)
    if attention_hits:
        metrics["attention_top1_on_lesion"] = float(np.mean(attention_hits))
    if progress:
        progress(f"evaluated {len(y_true)} rows of {dataset.csv_path.name}: accuracy {metrics['accuracy']:.3f}, "
                 f"AUC {metrics['roc_auc']}, pointing game {metrics['pointing_game']}")
    return metrics


def evaluate_csv(*, loaded: LoadedModel, csv_path: str | Path, load_pixels: PixelLoader, batch_size: int = 16) -> dict:
    """Evaluate on a `path,label[,mask_path]` CSV: accuracy, per-class P/R/F1, macro F1, ROC AUC, confusion
    matrix, and the pointing game (fraction of lesion heatmaps whose maximum lies in the mask) when masks exist.
    """
    dataset = read_dataset_csv(csv_path=csv_path, task=loaded.manifest.task)
    return evaluate_dataset(loaded=loaded, dataset=dataset, load_pixels=load_pixels, batch_size=batch_size)
