"""Classification metrics: accuracy, log loss and their probabilistic relatives.

All functions take labels and predictions that are already aligned row by row. Where MLE-bench
scores with scikit-learn, so do we (same validation of label types, same clipping), and inputs
scikit-learn refuses raise its ValueError or TypeError.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import xlogy
from sklearn.metrics import accuracy_score
from sklearn.metrics import log_loss as _sklearn_log_loss

from services.grader.metrics.binary_labels import positive_class


def accuracy(y_true: np.ndarray | list, y_pred: np.ndarray | list) -> float:
    """Share of rows whose predicted label equals the true one (scikit-learn's accuracy).

    Text labels on one side and numbers on the other are scored as MLE-bench's scikit-learn
    (1.5) scores them: 0.0 (no value can match), unless both sides have at most two distinct
    labels, where it raises TypeError. Newer scikit-learn rejects every such mix.
    """
    true, pred = np.asarray(y_true), np.asarray(y_pred)
    if true.ndim == pred.ndim == 1 and len(true) == len(pred) and len(true):
        text_true, text_pred = _all_text(true), _all_text(pred)
        if text_true != text_pred and _class_like(pred if text_true else true):
            if len(pd.unique(true)) <= 2 and len(pd.unique(pred)) <= 2:
                raise TypeError("Labels in y_true and y_pred should be of the same type.")
            return 0.0
    if _both_bool(true, pred):
        # scikit-learn's own arithmetic for two 1-D boolean arrays (both "binary", numbers,
        # no label checks that can fail): the mean of the equality mask. Its type checks
        # collect the distinct labels by sorting, which costs more than the whole grade.
        return float(np.average(true == pred))
    return float(accuracy_score(y_true, y_pred))


def _both_bool(true: np.ndarray, pred: np.ndarray) -> bool:
    return (
        true.dtype == pred.dtype == np.bool_
        and true.ndim == pred.ndim == 1
        and len(true) == len(pred) > 0
    )


def _all_text(values: np.ndarray) -> bool:
    if values.dtype.kind == "U":
        return True
    return values.dtype == object and all(isinstance(v, str) for v in values)


def _class_like(values: np.ndarray) -> bool:
    """Booleans, integers, or finite whole floats: what scikit-learn takes as class labels."""
    if values.dtype.kind in "biu":
        return True
    if values.dtype.kind == "f":
        return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))
    return False


def exact_match_rate(y_true: np.ndarray | pd.Series, y_pred: np.ndarray | pd.Series) -> float:
    """Share of rows where the two values are equal, with no check of label types.

    Equals scikit-learn's accuracy wherever that accepts the input (e.g. two arrays of text),
    without its cost of collecting the distinct labels.
    """
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def log_loss(y_true: np.ndarray, y_proba: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels, as MLE-bench's scikit-learn (1.5.2)
    computes it.

    `y_true` is either a vector of labels (with `y_proba` the probability of the larger label)
    or a one-hot indicator matrix (with `y_proba` a matching matrix of class probabilities).
    Probabilities are clipped to [eps, 1 - eps] with eps the float64 machine epsilon; rows are
    not renormalised. The logarithm is scipy's `xlogy`, the C library's log, as in 1.5.2:
    newer scikit-learn takes numpy's vectorised log, which differs from it in the last bit for
    about one input in four, enough to round a score differently. Inputs neither fast path
    takes go to scikit-learn, for its errors (a single class, probabilities outside [0, 1]).
    """
    y_true, y_proba = np.asarray(y_true), np.asarray(y_proba)
    chosen = _binary_true_class(y_true, y_proba)
    if chosen is None:
        chosen = _one_hot_true_class(y_true, y_proba)
    if chosen is None:
        return float(_sklearn_log_loss(y_true, y_proba))
    eps = np.finfo(np.float64).eps
    # 1.5.2 sums x * log(p) over each row, where every term but the true class's is exactly 0.
    return float(np.average(-xlogy(1.0, np.clip(chosen, eps, 1 - eps))))


def _probabilities(y_proba: np.ndarray) -> np.ndarray | None:
    """float64 probabilities as scikit-learn's check_array makes them (integers, booleans and
    objects become float64: a frame with a boolean column next to float ones gives objects),
    when all are finite and within [0, 1]; None otherwise."""
    if y_proba.dtype.kind in "iubO":
        try:
            y_proba = y_proba.astype(np.float64)
        except (TypeError, ValueError):
            return None
    if y_proba.dtype != np.float64 or not y_proba.size:
        return None
    if not (np.all(np.isfinite(y_proba)) and y_proba.min() >= 0 and y_proba.max() <= 1):
        return None
    return y_proba


def _binary_true_class(y_true: np.ndarray, y_proba: np.ndarray) -> np.ndarray | None:
    """Each row's probability of its true class, for integer or boolean labels of exactly two
    classes and a 1-D vector of probabilities (that of the larger label); None for any other
    input. scikit-learn builds the columns [1 - p, p] and one-hot encodes the labels."""
    if y_proba.ndim != 1:
        return None
    positive = positive_class(y_true)
    if positive is None or len(positive) != len(y_proba):
        return None  # one class (scikit-learn raises), several, a length mismatch: its path
    probabilities = _probabilities(y_proba)
    if probabilities is None:
        return None
    return np.where(positive, probabilities, 1 - probabilities)


def _one_hot_true_class(y_true: np.ndarray, y_proba: np.ndarray) -> np.ndarray | None:
    """Each row's probability of its true class, for a one-hot 0/1 matrix of two or more
    classes (exactly one 1 per row) and a probability matrix of the same shape; None for any
    other input."""
    if y_true.ndim != 2 or y_true.shape != y_proba.shape or y_true.shape[1] < 2:
        return None
    if y_true.dtype.kind not in "iufb" or not np.isin(y_true, (0, 1)).all():
        return None
    if not (y_true.sum(axis=1) == 1).all():
        return None
    probabilities = _probabilities(y_proba)
    if probabilities is None:
        return None
    return probabilities[np.arange(len(y_true)), y_true.argmax(axis=1)]


def weighted_binary_log_loss(
    y_true: np.ndarray,
    y_proba: np.ndarray,
    negative_weights: np.ndarray,
    positive_weights: np.ndarray,
    eps: float = 1e-15,
) -> float:
    """Per-row weighted mean of binary log losses over several targets, averaged over rows.

    `y_true` and `y_proba` have shape (rows, targets). Each cell's loss is weighted by
    `positive_weights[target]` when its label is 1 and `negative_weights[target]` when 0; a row's
    loss is the weighted sum divided by the row's total weight. Probabilities are clipped to
    [eps, 1 - eps] so that confident mistakes cost a large but finite amount.
    """
    y_proba = np.clip(y_proba, eps, 1 - eps)
    cell_loss = -(y_true * np.log(y_proba) + (1 - y_true) * np.log(1 - y_proba))
    weights = y_true * positive_weights + (1 - y_true) * negative_weights
    row_loss = _row_sums(cell_loss * weights) / _row_sums(weights)
    return float(np.mean(row_loss))


def kl_divergence(y_true: np.ndarray, y_proba: np.ndarray, eps: float = 1e-15) -> float:
    """Mean over rows of KL(y_true_row || y_proba_row), for (rows, classes) distributions.

    Predictions are clipped to [eps, 1 - eps]; cells where the true probability is 0 contribute
    0 (scipy's `rel_entr` convention), as in Kaggle's KL-divergence metric with row averaging.
    """
    y_true = np.asarray(y_true, dtype=float)
    y_proba = np.clip(np.asarray(y_proba, dtype=float), eps, 1 - eps)
    positive = y_true != 0
    terms = np.zeros_like(y_true)
    terms[positive] = y_true[positive] * np.log(y_true[positive] / y_proba[positive])
    return float(np.mean(_row_sums(terms)))


def _row_sums(values: np.ndarray) -> np.ndarray:
    """Row sums added strictly left to right, whatever the array's memory layout.

    numpy's own sum(axis=1) adds in a layout-dependent order; MLE-bench's arrays come from
    DataFrames (column-major), which means left to right, and we match its last bits.
    """
    total = values[:, 0].copy()
    for j in range(1, values.shape[1]):
        total += values[:, j]
    return total
