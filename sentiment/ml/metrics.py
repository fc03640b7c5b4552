"""Classification metrics in plain numpy: accuracy, macro/weighted F1, per-class scores, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class ClassMetrics:
    """Precision, recall and F1 of one class, and how many true examples it has (support)."""

    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, slots=True)
class ClassificationMetrics:
    """Every metric of one evaluation; `confusion[i][j]` counts true class i predicted as class j."""

    labels: tuple[str, ...]
    n: int
    accuracy: float
    macro_f1: float
    weighted_f1: float
    per_class: dict[str, ClassMetrics]
    confusion: list[list[int]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in a model manifest."""
        data = asdict(self)
        data["labels"] = list(self.labels)
        return data


def _as_indices(values: Sequence[int] | np.ndarray, *, n_classes: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.int64).reshape(-1)
    if array.size and (array.min() < 0 or array.max() >= n_classes):
        raise ValueError(f"{name} holds class indices outside 0..{n_classes - 1}.")
    return array


def confusion_matrix(*, y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                     n_classes: int) -> np.ndarray:
    """Counts of (true, predicted) class pairs as an `n_classes x n_classes` integer matrix."""
    true = _as_indices(y_true, n_classes=n_classes, name="y_true")
    pred = _as_indices(y_pred, n_classes=n_classes, name="y_pred")
    if true.shape != pred.shape:
        raise ValueError(f"y_true has {true.size} items but y_pred has {pred.size}.")
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (true, pred), 1)
    return matrix


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    # A class never predicted (or never present) scores 0 rather than NaN, as scikit-learn's zero_division=0.
    out = np.zeros_like(numerator, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def classification_metrics(*, y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray,
                           labels: Sequence[str]) -> ClassificationMetrics:
    """Compute all metrics for integer class indices into `labels`.

    Macro F1 averages over every label given, including labels absent from `y_true` (they score 0).
    """
    labels = tuple(labels)
    matrix = confusion_matrix(y_true=y_true, y_pred=y_pred, n_classes=len(labels))
    total = int(matrix.sum())
    if total == 0:
        raise ValueError("cannot compute metrics for zero examples.")
    true_positive = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    precision = _safe_divide(true_positive, predicted)
    recall = _safe_divide(true_positive, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    per_class = {
        label: ClassMetrics(precision=float(precision[i]), recall=float(recall[i]), f1=float(f1[i]),
                            support=int(support[i]))
        for i, label in enumerate(labels)
    }
    return ClassificationMetrics(
        labels=labels,
        n=total,
        accuracy=float(true_positive.sum() / total),
        macro_f1=float(f1.mean()),
        weighted_f1=float((f1 * support).sum() / support.sum()),
        per_class=per_class,
        confusion=matrix.tolist(),
    )
