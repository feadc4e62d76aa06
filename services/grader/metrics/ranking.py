"""Ranking metrics: mean average precision at k and label-weighted label-ranking precision."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import label_ranking_average_precision_score

from services.grader.metrics.token_sets import (
    first_occurrence,
    is_in,
    pair_keys,
    sorted_unique,
    split_flat,
)


def average_precision_at_k(actual: pd.Series, predicted: pd.Series, k: int) -> np.ndarray:
    """AP@k of each row. Both Series hold str of items separated by single spaces, split
    exactly like `str.split(" ")` (so "a  b" holds an empty item): `actual` the relevant items
    (order and repeats do not matter), `predicted` the ranked guesses, best first. (MLE-bench
    converts cells with astype(str) first, so a missing cell is the one item "nan".)

    Only the first k guesses count, and a repeated guess scores only where it first appears.
    Each hit at 1-based rank r adds (hits so far) / r; the sum is divided by min(number of
    relevant items, k), and a row without relevant items scores 0. These are the ml_metrics
    definitions MLE-bench uses. Ranks are summed one at a time in rank order, as a per-row
    loop would, so results agree to the last bit.
    """
    if len(actual) != len(predicted):
        raise ValueError(f"need aligned Series, got {len(actual)} and {len(predicted)} rows")
    n = len(actual)
    true_rows, true_items = split_flat(actual, " ")
    pred_rows, pred_items = split_flat(predicted, " ")
    starts = np.searchsorted(pred_rows, np.arange(n))
    ranks = np.arange(len(pred_rows)) - starts[pred_rows]
    in_top_k = ranks < k
    pred_rows, pred_items, ranks = pred_rows[in_top_k], pred_items[in_top_k], ranks[in_top_k]

    true_keys, pred_keys = pair_keys(true_rows, true_items, pred_rows, pred_items)
    relevant = sorted_unique(true_keys)
    hit = is_in(pred_keys, relevant) & first_occurrence(pred_keys)

    hits_per_row = np.bincount(pred_rows[hit], minlength=n)
    hits_so_far = np.cumsum(hit) - (np.cumsum(hits_per_row) - hits_per_row)[pred_rows]
    gains = np.zeros((n, k))
    gains[pred_rows[hit], ranks[hit]] = hits_so_far[hit] / (ranks[hit] + 1.0)
    score = np.zeros(n)
    for rank in range(k):
        score += gains[:, rank]

    n_relevant = np.bincount(true_rows[first_occurrence(true_keys)], minlength=n)
    ap = score / np.maximum(np.minimum(n_relevant, k), 1)
    ap[n_relevant == 0] = 0.0
    return ap


def mean_average_precision_at_k(actual: pd.Series, predicted: pd.Series, k: int) -> np.float64:
    """MAP@k: the mean over rows of `average_precision_at_k`, as a numpy float64 like
    MLE-bench's (rounding a numpy float can differ from Python's round())."""
    return np.mean(average_precision_at_k(actual, predicted, k))


def label_weighted_lrap(truth: np.ndarray, scores: np.ndarray) -> float:
    """Label-weighted label-ranking average precision (lwlrap) of a (rows, labels) problem.

    Every true label weighs the same: each row is weighted by its number of true labels, so
    rows without any true label drop out. Ties in `scores` rank pessimistically, as in
    scikit-learn's `label_ranking_average_precision_score`, which does the computation.
    """
    truth = np.asarray(truth)
    weights = np.sum(truth > 0, axis=1)
    keep = np.flatnonzero(weights > 0)
    return float(
        label_ranking_average_precision_score(
            truth[keep, :] > 0, np.asarray(scores)[keep, :], sample_weight=weights[keep]
        )
    )
