"""Evaluate a loaded sentiment model on labelled sentences."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sentiment.ml.labelled_data import LabelledText, label_index, read_labelled_csv
from sentiment.ml.manifest import LoadedSentimentModel
from sentiment.ml.metrics import ClassificationMetrics, classification_metrics
from sentiment.ml.scoring import score_texts


def evaluate_rows(*, loaded: LoadedSentimentModel, rows: Sequence[LabelledText],
                  batch_size: int = 64) -> ClassificationMetrics:
    """Score every row and compare the predicted labels with the given ones."""
    scores = score_texts(loaded=loaded, texts=[row.text for row in rows], batch_size=batch_size)
    return classification_metrics(
        y_true=[label_index(row.label) for row in rows],
        y_pred=[loaded.labels.index(score.label) for score in scores],
        labels=loaded.labels,
    )


def evaluate_csv(*, loaded: LoadedSentimentModel, csv_path: Path | str, batch_size: int = 64) -> dict[str, Any]:
    """Metrics of `loaded` on a validated `text,label` CSV, as a JSON-ready dict (see ClassificationMetrics)."""
    rows = read_labelled_csv(path=csv_path)
    return evaluate_rows(loaded=loaded, rows=rows, batch_size=batch_size).to_dict()
