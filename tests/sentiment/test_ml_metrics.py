"""Metrics against values computed by hand."""

from __future__ import annotations

import pytest

from sentiment.ml.metrics import classification_metrics, confusion_matrix

LABELS = ("negative", "neutral", "positive")


def test_metrics_match_hand_computed_values() -> None:
    # true:  n n n u u p p p p p ; pred: n u n u p p p n p u
    y_true = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2]
    y_pred = [0, 1, 0, 1, 2, 2, 2, 0, 2, 1]
    result = classification_metrics(y_true=y_true, y_pred=y_pred, labels=LABELS)
    assert result.confusion == [[2, 1, 0], [0, 1, 1], [1, 1, 3]]
    assert result.accuracy == pytest.approx(6 / 10)
    negative, neutral, positive = (result.per_class[label] for label in LABELS)
    assert (negative.precision, negative.recall, negative.support) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    assert negative.f1 == pytest.approx(2 / 3)
    assert (neutral.precision, neutral.recall) == (pytest.approx(1 / 3), pytest.approx(1 / 2))
    assert neutral.f1 == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))  # 0.4
    assert (positive.precision, positive.recall) == (pytest.approx(3 / 4), pytest.approx(3 / 5))
    assert positive.f1 == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert result.macro_f1 == pytest.approx((2 / 3 + 0.4 + 2 * 0.75 * 0.6 / 1.35) / 3)
    assert result.weighted_f1 == pytest.approx((3 * 2 / 3 + 2 * 0.4 + 5 * 2 * 0.75 * 0.6 / 1.35) / 10)
    assert result.to_dict()["labels"] == list(LABELS)


def test_class_never_predicted_scores_zero_not_nan() -> None:
    result = classification_metrics(y_true=[0, 1, 2], y_pred=[0, 0, 0], labels=LABELS)
    assert result.per_class["positive"].precision == 0.0 and result.per_class["positive"].f1 == 0.0
    assert result.accuracy == pytest.approx(1 / 3)


def test_confusion_matrix_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(y_true=[0, 3], y_pred=[0, 1], n_classes=3)
    with pytest.raises(ValueError, match="items"):
        confusion_matrix(y_true=[0, 1], y_pred=[0], n_classes=3)
    with pytest.raises(ValueError, match="zero examples"):
        classification_metrics(y_true=[], y_pred=[], labels=LABELS)
