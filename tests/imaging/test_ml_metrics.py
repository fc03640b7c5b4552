"""Metrics against hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from imaging.ml.metrics import (
    accuracy,
    binary_roc_auc,
    classification_metrics,
    confusion_matrix,
    pointing_game,
    roc_auc,
)


def test_confusion_matrix_and_accuracy() -> None:
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 0, 2]
    assert confusion_matrix(y_true=y_true, y_pred=y_pred, num_classes=3).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert accuracy(y_true=y_true, y_pred=y_pred) == pytest.approx(4 / 6)


def test_per_class_precision_recall_f1_and_macro_f1() -> None:
    # predictions: argmax of one-hot rows reproduces y_pred = [0, 1, 1, 1, 0, 2]
    probabilities = np.eye(3)[[0, 1, 1, 1, 0, 2]] * 0.8 + 0.2 / 3
    metrics = classification_metrics(y_true=[0, 0, 1, 1, 2, 2], probabilities=probabilities, labels=["a", "b", "c"])
    a, b, c = (metrics["per_class"][k] for k in "abc")
    assert (a["precision"], a["recall"], a["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    assert (b["precision"], b["recall"], b["f1"]) == pytest.approx((2 / 3, 1.0, 0.8))
    assert (c["precision"], c["recall"], c["f1"]) == pytest.approx((1.0, 0.5, 2 / 3))
    assert a["support"] == 2
    assert metrics["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["confusion_matrix"]["rows_true_columns_predicted"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_precision_is_zero_not_nan_for_a_never_predicted_class() -> None:
    metrics = classification_metrics(y_true=[0, 1], probabilities=np.array([[0.9, 0.1], [0.8, 0.2]]), labels=["x", "y"])
    assert metrics["per_class"]["y"]["precision"] == 0.0 and metrics["per_class"]["y"]["f1"] == 0.0


def test_binary_auc_with_ties_counts_half() -> None:
    # pairs (pos, neg): 0.35>0.1 yes, 0.35>0.4 no, 0.8>both yes -> 3/4
    assert binary_roc_auc(y_true=[0, 0, 1, 1], scores=[0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    # one tied pair out of four counts one half
    assert binary_roc_auc(y_true=[0, 0, 1, 1], scores=[0.1, 0.5, 0.5, 0.9]) == pytest.approx(3.5 / 4)
    assert binary_roc_auc(y_true=[1, 1], scores=[0.2, 0.3]) is None


def test_roc_auc_binary_uses_positive_column_and_is_symmetric() -> None:
    probabilities = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    y_true = [0, 0, 1, 1]
    assert roc_auc(y_true=y_true, probabilities=probabilities) == pytest.approx(0.75)
    assert roc_auc(y_true=y_true, probabilities=probabilities, positive_index=0) == pytest.approx(0.75)


def test_roc_auc_multiclass_is_macro_one_vs_rest() -> None:
    probabilities = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6], [0.4, 0.4, 0.2]])
    y_true = [0, 1, 2, 1]
    # class 0: pos 0.7 vs neg (0.2, 0.1, 0.4) -> 1; class 1: pos (0.5, 0.4) vs neg (0.2, 0.3) -> 1;
    # class 2: pos 0.6 vs neg (0.1, 0.3, 0.2) -> 1
    assert roc_auc(y_true=y_true, probabilities=probabilities) == pytest.approx(1.0)
    # columns 0 and 1 swapped: class 0 -> 0.2 vs (0.5, 0.3, 0.4) = 0; class 1 -> (0.2, 0.4) vs (0.7, 0.1) = 2/4
    flipped = probabilities[:, [1, 0, 2]]
    assert roc_auc(y_true=y_true, probabilities=flipped) == pytest.approx((0.0 + 0.5 + 1.0) / 3)


def test_pointing_game() -> None:
    mask = np.zeros((4, 4), dtype=bool)
    mask[1:3, 1:3] = True
    hit = np.zeros((4, 4))
    hit[2, 1] = 1.0
    miss = np.zeros((4, 4))
    miss[0, 3] = 1.0
    assert pointing_game([hit, miss, hit], [mask, mask, mask]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="non-empty"):
        pointing_game([hit], [np.zeros((4, 4), dtype=bool)])
    with pytest.raises(ValueError, match="shape"):
        pointing_game([np.zeros((3, 3))], [mask])
