"""Bias-aware ROC AUC: overall AUC combined with per-subgroup AUCs (Jigsaw's unintended-bias
metric, from Borkan et al., "Nuanced Metrics for Measuring Unintended Bias").

For each identity subgroup three AUCs are taken on subsets of the rows:
- subgroup: only rows that mention the identity;
- BPSN (background positive, subgroup negative): negatives that mention it and positives
  that do not;
- BNSP (background negative, subgroup positive): positives that mention it and negatives
  that do not.
Each kind is summarised across subgroups by a power mean M_p, and the score is
w * overall + sum over kinds of w * M_p(kind).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from services.grader.metrics.auc import roc_auc


def power_mean(values: Sequence[float], p: float) -> np.float64:
    """(mean of v**p) ** (1/p), summed left to right in numpy float64, as MLE-bench's grader
    does with scikit-learn 1.5.2's float64 AUCs. For p < 0 an AUC of 0 makes v**p infinite and
    the mean 0 (the power mean's limit), where Python floats would raise ZeroDivisionError."""
    with np.errstate(divide="ignore"):
        powers = [np.float64(v) ** p for v in values]
    return (sum(powers) / len(values)) ** (1 / p)


def subgroup_aucs(
    y_true: np.ndarray, y_score: np.ndarray, in_subgroup: np.ndarray
) -> tuple[float, float, float]:
    """(subgroup, BPSN, BNSP) AUCs for one subgroup, given as a boolean mask over rows."""
    positive = y_true == 1
    bpsn = (~positive & in_subgroup) | (positive & ~in_subgroup)
    bnsp = (positive & in_subgroup) | (~positive & ~in_subgroup)
    subgroup, background_positive, background_negative = (
        roc_auc(y_true[mask], y_score[mask]) for mask in (in_subgroup, bpsn, bnsp)
    )
    return subgroup, background_positive, background_negative


def bias_weighted_auc(
    y_true: np.ndarray,
    y_score: np.ndarray,
    subgroups: Sequence[np.ndarray],
    p: float = -5,
    weight: float = 0.25,
) -> np.float64:
    """The combined score for binary labels `y_true`, scores `y_score` and boolean subgroup
    masks. As in MLE-bench's scikit-learn (1.5), a subset with a single class or no rows has
    no AUC and raises ValueError (no score)."""
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score)
    overall = roc_auc(y_true, y_score)
    per_subgroup = [subgroup_aucs(y_true, y_score, np.asarray(m, dtype=bool)) for m in subgroups]
    kind_means = [power_mean([aucs[kind] for aucs in per_subgroup], p) for kind in range(3)]
    # float64 throughout, the type the reference's score has (the core rounds on that type).
    return weight * np.float64(overall) + sum([weight * mean for mean in kind_means])
