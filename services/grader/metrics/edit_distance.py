"""Levenshtein edit distance between aligned pairs of strings or token sequences.

Each pair goes through the C implementation of the `Levenshtein` package (the one MLE-bench
uses), so distances are exact integers; only the final reductions happen in numpy. Results
are numpy float64, as in MLE-bench: rounding a numpy float can differ from Python's round().
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from Levenshtein import distance


def pairwise_levenshtein(y_true: Sequence, y_pred: Sequence) -> np.ndarray:
    """Edit distance of each (true, predicted) pair; items may be strings or lists of tokens."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"need aligned sequences, got {len(y_true)} and {len(y_pred)} items")
    return np.fromiter(map(distance, y_true, y_pred), dtype=np.int64, count=len(y_true))


def mean_levenshtein(y_true: Sequence, y_pred: Sequence) -> np.float64:
    """Average edit distance per pair (lower is better)."""
    return np.mean(pairwise_levenshtein(y_true, y_pred))


def token_error_rate(y_true: Sequence[Sequence], y_pred: Sequence[Sequence]) -> np.float64:
    """Total edit distance over the total length of the true sequences (an error rate that
    can exceed 1). Undefined, so ZeroDivisionError, when every true sequence is empty."""
    total_length = sum(len(tokens) for tokens in y_true)
    if total_length == 0:
        raise ZeroDivisionError("token error rate is undefined when no true tokens exist")
    return np.sum(pairwise_levenshtein(y_true, y_pred)) / total_length
