"""Classification and localisation metrics in plain numpy (no sklearn in workers)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(*, y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """Counts (num_classes, num_classes): rows are true classes, columns predicted classes."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return matrix


def accuracy(*, y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    """Fraction of exact matches; raises on empty input."""
    true, pred = np.asarray(y_true), np.asarray(y_pred)
    if true.size == 0 or true.shape != pred.shape:
        raise ValueError("accuracy needs two non-empty sequences of the same length")
    return float((true == pred).mean())


def per_class_scores(*, matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from a confusion matrix (0.0 where undefined)."""
    tp = np.diag(matrix).astype(np.float64)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(tp), where=total > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def binary_roc_auc(*, y_true: Sequence[bool], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with tie-averaged ranks); None when only one class is present."""
    positive = np.asarray(y_true, dtype=bool)
    values = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    # average ranks over ties so that tied positive/negative pairs count one half
    boundaries = np.flatnonzero(np.diff(sorted_values)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(values)]])
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_auc(*, y_true: Sequence[int], probabilities: np.ndarray, positive_index: int | None = None) -> float | None:
    """Binary: AUC of the positive class (default: the last); multi-class: macro one-vs-rest over defined classes."""
    true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probabilities, dtype=np.float64)
    num_classes = probs.shape[1]
    if num_classes == 2:
        index = num_classes - 1 if positive_index is None else positive_index
        return binary_roc_auc(y_true=true == index, scores=probs[:, index])
    aucs = [binary_roc_auc(y_true=true == k, scores=probs[:, k]) for k in range(num_classes)]
    defined = [a for a in aucs if a is not None]
    return float(np.mean(defined)) if defined else None


def classification_metrics(*, y_true: Sequence[int], probabilities: np.ndarray, labels: Sequence[str],
                           positive_label: str | None = None) -> dict:
    """JSON-ready metrics: accuracy, per-class precision/recall/F1, macro F1, ROC AUC, confusion matrix."""
    probs = np.asarray(probabilities, dtype=np.float64)
    true = np.asarray(y_true, dtype=np.int64)
    if probs.ndim != 2 or probs.shape != (len(true), len(labels)):
        raise ValueError(f"probabilities must have shape ({len(true)}, {len(labels)}), got {probs.shape}")
    pred = probs.argmax(axis=1)
    matrix = confusion_matrix(y_true=true, y_pred=pred, num_classes=len(labels))
    scores = per_class_scores(matrix=matrix)
    positive_index = labels.index(positive_label) if positive_label is not None else None
    result = {
        "n": int(len(true)),
        "accuracy": accuracy(y_true=true, y_pred=pred),
        "macro_f1": float(scores["f1"].mean()),
        "roc_auc": roc_auc(y_true=true, probabilities=probs, positive_index=positive_index),
        "per_class": {
            label: {key: (int(scores[key][k]) if key == "support" else float(scores[key][k])) for key in scores}
            for k, label in enumerate(labels)
        },
        "confusion_matrix": {"labels": list(labels), "rows_true_columns_predicted": matrix.tolist()},
    }
    if len(labels) == 2:
        result["roc_auc_positive_label"] = labels[-1 if positive_index is None else positive_index]
    return result


def pointing_hit(*, heatmap: np.ndarray, mask: np.ndarray) -> bool:
    """Whether the heatmap's maximum (first one on ties) lies inside the mask."""
    if heatmap.shape != mask.shape:
        raise ValueError(f"heatmap shape {heatmap.shape} differs from mask shape {mask.shape}")
    return bool(np.asarray(mask, dtype=bool).flat[int(np.argmax(heatmap))])


def pointing_game(heatmaps: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> float:
    """Fraction of heatmaps whose argmax lies inside the matching mask; every mask must be non-empty."""
    if len(heatmaps) != len(masks) or not masks:
        raise ValueError("pointing game needs the same, non-zero number of heatmaps and masks")
    if any(not np.any(mask) for mask in masks):
        raise ValueError("pointing game needs non-empty masks; leave out images without a lesion")
    return float(np.mean([pointing_hit(heatmap=h, mask=m) for h, m in zip(heatmaps, masks, strict=True)]))
