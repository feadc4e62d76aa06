"""Word-set overlap between aligned texts: the Jaccard index of their sets of lower-cased words.

Texts are lower-cased and split on any whitespace with Python's `str.lower()` and
`str.split()`, and each text becomes a set of words; the set arithmetic is vectorised.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from services.grader.metrics.token_sets import (
    first_occurrence,
    flatten,
    is_in,
    pair_keys,
    sorted_unique,
)


def word_set_counts(y_true: pd.Series, y_pred: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Per row: size of the intersection and size of the union of the two word sets."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"need aligned Series, got {len(y_true)} and {len(y_pred)} rows")
    n = len(y_true)
    true_rows, true_words = flatten(y_true.str.lower().str.split())
    pred_rows, pred_words = flatten(y_pred.str.lower().str.split())
    true_keys, pred_keys = pair_keys(true_rows, true_words, pred_rows, pred_words)
    true_distinct = first_occurrence(true_keys)
    pred_distinct = first_occurrence(pred_keys)
    shared = pred_distinct & is_in(pred_keys, sorted_unique(true_keys))
    intersection = np.bincount(pred_rows[shared], minlength=n)
    sizes = np.bincount(true_rows[true_distinct], minlength=n) + np.bincount(
        pred_rows[pred_distinct], minlength=n
    )
    return intersection, sizes - intersection


def mean_word_jaccard(
    y_true: pd.Series, y_pred: pd.Series, both_empty: float | None = None
) -> float:
    """Mean over rows of |A & B| / |A | B| for the word sets A and B of each pair of texts.

    Two empty texts have no defined Jaccard index: `both_empty` is the value to use for such
    a row, or None to raise ZeroDivisionError (the Kaggle tweet-sentiment metric does).
    """
    intersection, union = word_set_counts(y_true, y_pred)
    empty = union == 0
    if empty.any() and both_empty is None:
        raise ZeroDivisionError("Jaccard index is undefined for two empty texts")
    scores = intersection / np.where(empty, 1, union)
    scores[empty] = both_empty if both_empty is not None else 0.0
    return float(np.mean(scores))
