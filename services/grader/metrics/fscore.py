"""F-scores: macro and micro F1 over class labels, micro F1 over label sets, probabilistic F1.

Inputs are aligned row by row. Results keep the scalar type MLE-bench's grader ends with
(Python float from scikit-learn, numpy float64 from numpy arithmetic), as the score is rounded
with round() on that type.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from services.grader.metrics import Score


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted mean of per-class F1 over every class seen in either array."""
    return f1_score(y_true, y_pred, average="macro")


def micro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """F1 of pooled counts; for one label per row this equals accuracy."""
    return f1_score(y_true, y_pred, average="micro")


def micro_f1_of_label_sets(true_sets: pd.Series, pred_sets: pd.Series) -> float:
    """Micro F1 where each row holds a whitespace-separated set of labels ('' = none).

    As in MLE-bench (a MultiLabelBinarizer fitted on the true labels only), predicted labels
    that never occur among the true labels are ignored, and a label repeated within a row
    counts once. F1 = 2 TP / (|true pairs| + |predicted pairs|), or 0 when both are empty.
    """
    true_rows, true_labels = _row_label_pairs(true_sets)
    pred_rows, pred_labels = _row_label_pairs(pred_sets)
    classes = pd.Index(pd.unique(true_labels))
    true_codes = classes.get_indexer(true_labels)
    pred_codes = classes.get_indexer(pred_labels)
    known = pred_codes >= 0
    # One integer per (row, label) pair; hashing (not sorting) dedupes and intersects them.
    width = max(len(classes), 1)
    true_pairs = pd.unique(true_rows * width + true_codes)
    pred_pairs = pd.unique(pred_rows[known] * width + pred_codes[known])
    denominator = len(true_pairs) + len(pred_pairs)
    if denominator == 0:
        return 0.0
    true_positives = denominator - len(pd.unique(np.concatenate([true_pairs, pred_pairs])))
    return float(2.0 * true_positives / denominator)


def _row_label_pairs(label_sets: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(row position, label) for every label in every row, rows numbered 0..n-1."""
    tokens = label_sets.reset_index(drop=True).str.split().explode().dropna()
    return tokens.index.to_numpy(dtype=np.int64), tokens.to_numpy(dtype=object)


def probabilistic_f1(labels: np.ndarray, predictions: np.ndarray, beta: float = 1.0) -> Score:
    """The probabilistic F-beta of the RSNA screening mammography competition.

    Predictions are clipped to [0, 1] and counted fractionally: true positives sum them over
    positive rows, false positives over negative rows. When precision or recall is not
    positive (or undefined, as when every prediction is 0), the score is 0.
    """
    clipped = np.clip(np.asarray(predictions, dtype=float), 0, 1)
    positive = np.asarray(labels).astype(bool)
    # Running sums: the host's metric adds row by row, and cumsum keeps that order (np.sum
    # would sum pairwise and could differ in the last bits).
    soft_tp = _sequential_sum(clipped[positive])
    soft_fp = _sequential_sum(clipped[~positive])
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.float64(soft_tp) / (soft_tp + soft_fp)
        recall = np.float64(soft_tp) / int(positive.sum())
    if not (precision > 0 and recall > 0):
        return 0.0
    beta2 = beta * beta
    return (1 + beta2) * (precision * recall) / (beta2 * precision + recall)


def _sequential_sum(values: np.ndarray) -> float:
    return float(np.cumsum(values)[-1]) if len(values) else 0.0
