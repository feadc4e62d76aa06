"""Area under the ROC curve: plain, averaged over label columns, and band-weighted.

All functions take labels and scores that are already aligned row by row. A label column with
a single class has no defined AUC: scikit-learn 1.5 (MLE-bench's version) then raises
ValueError, and so do these (scikit-learn 1.9 would warn and give NaN instead).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.integrate import trapezoid
from sklearn.metrics import roc_auc_score, roc_curve

from services.grader.metrics.binary_labels import positive_class


def roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Binary ROC AUC; ties in `y_score` count as half, as in scikit-learn."""
    fast = _binary_roc_auc(np.asarray(y_true), np.asarray(y_score))
    if fast is not None:
        return fast
    if len(np.unique(np.asarray(y_true))) != 2:
        raise ValueError("Only one class present in y_true; ROC AUC is not defined.")
    return float(roc_auc_score(y_true, y_score))


def _binary_roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float | None:
    """scikit-learn's `roc_auc_score`, bit for bit, for integer or boolean labels of exactly
    two classes and a 1-D float64 vector of finite scores; None for any other input.

    scikit-learn first checks and one-hot encodes the labels (several sorts to find the
    classes), then builds the ROC curve: the scores in descending order, the cumulative
    count of positives (tps) and negatives (fps) at the last row of each run of equal scores,
    the points that are not collinear with their neighbours (drop_intermediate), a (0, 0)
    start, then fps / fps[-1] and tps / tps[-1], and the area by scipy's `trapezoid`. The same
    steps here, with one difference that changes no value: the sort need not be stable,
    because the counts are read only at the end of each run of equal scores, where they do
    not depend on the order within the run. All counts are whole numbers, exact in float64.
    """
    if y_score.ndim != 1 or y_score.dtype != np.float64:
        return None
    positive = positive_class(y_true)
    if positive is None or len(positive) != len(y_score) or not np.all(np.isfinite(y_score)):
        return None
    descending = np.argsort(y_score)[::-1]
    scores = y_score[descending]
    ends = np.append(np.flatnonzero(np.diff(scores)), len(scores) - 1)
    tps = np.cumsum(positive[descending], dtype=np.float64)[ends]
    fps = 1 + ends - tps
    if len(fps) > 2:
        corners = np.logical_or(np.diff(fps, 2), np.diff(tps, 2))
        kept = np.flatnonzero(np.concatenate([[True], corners, [True]]))
        fps, tps = fps[kept], tps[kept]
    fps, tps = np.append(0.0, fps), np.append(0.0, tps)
    # fps never decreases, so scikit-learn's `auc` keeps the direction +1.
    return float(trapezoid(tps / tps[-1], fps / fps[-1]))


def mean_column_roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Unweighted mean of the binary ROC AUC of each column of two (n_rows, n_labels) arrays.

    This is scikit-learn's `average="macro"` for multi-label input, computed column by column
    so that it also serves multi-class one-hot labels.
    """
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score)
    if y_true.ndim != 2 or y_true.shape != y_score.shape:
        raise ValueError(f"need two 2-D arrays of one shape, got {y_true.shape}, {y_score.shape}")
    per_column = [roc_auc(y_true[:, j], y_score[:, j]) for j in range(y_true.shape[1])]
    return float(np.mean(per_column))


def band_weighted_roc_auc(
    y_true: np.ndarray,
    y_score: np.ndarray,
    tpr_bounds: Sequence[float],
    weights: Sequence[float],
) -> float:
    """ROC AUC where horizontal bands of the curve (ranges of true-positive rate) weigh differently.

    Band k spans TPR in [tpr_bounds[k], tpr_bounds[k + 1]] and has weight weights[k]. Its area is
    the area between the piecewise-linear ROC curve, clipped to the band, and the band's floor.
    The result is the weighted sum of band areas over the weighted sum of band heights, so a
    perfect ranking scores 1. This is the ALASKA2 steganalysis metric (bounds 0, 0.4, 1;
    weights 2, 1), with band edges placed exactly on the curve by linear interpolation.
    """
    if len(weights) != len(tpr_bounds) - 1:
        raise ValueError("need exactly one weight per band")
    fpr, tpr, _ = roc_curve(y_true, y_score, pos_label=1)
    fpr, tpr = _with_curve_points_at(fpr, tpr, tpr_bounds)
    total = 0.0
    for low, high, weight in zip(tpr_bounds[:-1], tpr_bounds[1:], weights, strict=True):
        height_in_band = np.clip(tpr, low, high) - low
        total += weight * trapezoid(height_in_band, fpr)
    band_heights = np.diff(np.asarray(tpr_bounds, dtype=float))
    return float(total / np.dot(band_heights, np.asarray(weights, dtype=float)))


def _with_curve_points_at(
    fpr: np.ndarray, tpr: np.ndarray, levels: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Insert a point on the ROC curve at each TPR level the curve passes without a vertex.

    Without these points a band edge would cut a segment of the curve, and the clipped area
    would follow the chord instead of the curve.
    """
    for level in levels:
        if np.any(tpr == level):
            continue
        after = int(np.searchsorted(tpr, level, side="right"))
        if after == 0 or after == len(tpr):
            continue  # the curve never reaches this level; nothing to split
        before = after - 1
        share = (level - tpr[before]) / (tpr[after] - tpr[before])
        x = fpr[before] + (fpr[after] - fpr[before]) * share
        fpr = np.insert(fpr, after, x)
        tpr = np.insert(tpr, after, level)
    return fpr, tpr
