"""Correlation and agreement: Pearson, Spearman, Kendall tau of orderings, MCC, weighted kappa.

Inputs are aligned row by row. Library implementations (scipy, scikit-learn) are used where
they define the metric, so undefined cases behave as in MLE-bench: a constant column gives NaN
for Pearson and Spearman rather than an error. Results keep the library's scalar type (numpy
float64 or Python float), as MLE-bench's score is rounded with round() on that type.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import cohen_kappa_score, matthews_corrcoef

# Rows of the pairwise comparison matrix built at once when counting inversions; bounds memory
# to about this many times the ordering's length in booleans.
_INVERSION_BLOCK = 1024


def pearson(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return pearsonr(y_true, y_pred)[0]


def mean_column_spearman(y_true: Sequence[np.ndarray], y_pred: Sequence[np.ndarray]) -> float:
    """Unweighted mean of the Spearman rank correlation of each pair of columns."""
    per_column = [
        spearmanr(pred, true).correlation for true, pred in zip(y_true, y_pred, strict=True)
    ]
    return np.mean(per_column)


def quadratic_weighted_kappa(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return cohen_kappa_score(y_pred, y_true, weights="quadratic")


def mcc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return matthews_corrcoef(y_true, y_pred)


def kendall_tau_of_orderings(true_ranks: np.ndarray, lengths: np.ndarray) -> float:
    """Kendall tau pooled over many orderings (the AI4Code metric).

    `true_ranks` concatenates, for each ordering in turn, the true position of every item in
    predicted order; `lengths` gives each ordering's item count. Inversions are summed over all
    orderings and compared with the pooled maximum: tau = 1 - 4 * inversions / sum(n * (n - 1)).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    inversions = sum(_count_inversions(true_ranks[start:end]) for start, end in pairwise(bounds))
    max_pairs_x2 = int(np.sum(lengths * (lengths - 1)))
    return 1 - 4 * inversions / max_pairs_x2


def _count_inversions(ranks: np.ndarray) -> int:
    """Pairs i < j with ranks[i] > ranks[j], counted block by block with numpy comparisons."""
    total = 0
    for start in range(0, len(ranks), _INVERSION_BLOCK):
        block = ranks[start : start + _INVERSION_BLOCK]
        rest = ranks[start:]
        later = np.arange(len(rest))[None, :] > np.arange(len(block))[:, None]
        total += int(np.count_nonzero((block[:, None] > rest[None, :]) & later))
    return total
