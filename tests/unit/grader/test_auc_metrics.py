"""Unit tests for services.grader.metrics.auc."""

import numpy as np
import pytest

from services.grader.metrics.auc import band_weighted_roc_auc, mean_column_roc_auc, roc_auc

ALASKA_BANDS = {"tpr_bounds": (0.0, 0.4, 1.0), "weights": (2.0, 1.0)}


def test_roc_auc_counts_ordered_pairs_and_half_ties():
    # Positives 0.35, 0.8, 0.9 against negatives 0.1, 0.4, 0.5: 1 + 3 + 3 of 9 pairs ordered.
    assert roc_auc(np.array([0, 0, 1, 1, 0, 1]), np.array([0.1, 0.4, 0.35, 0.8, 0.5, 0.9])) == (
        pytest.approx(7 / 9)
    )
    # Positives 0.5, 0.9 against negatives 0.5, 0.7: the tie counts half, so (0.5 + 0 + 2) / 4.
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.7, 0.9])) == pytest.approx(0.625)


def test_roc_auc_is_undefined_for_a_single_class():
    # MLE-bench's scikit-learn (1.5.2) raises here (observed: aerial-cactus and jigsaw answers
    # with a single-class column get no score); scikit-learn 1.9 would return NaN.
    with pytest.raises(ValueError, match="one class"):
        roc_auc(np.array([1, 1, 1]), np.array([0.1, 0.2, 0.3]))


def test_mean_column_roc_auc_is_the_unweighted_column_mean():
    y_true = np.array([[0, 1], [1, 0], [0, 1], [1, 0]])
    y_score = np.array([[0.1, 0.9], [0.9, 0.8], [0.2, 0.3], [0.8, 0.1]])
    # Column 0 ranks perfectly (1.0); column 1 orders 3 of its 4 pairs (0.75).
    assert mean_column_roc_auc(y_true, y_score) == pytest.approx(0.875)


def test_mean_column_roc_auc_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        mean_column_roc_auc(np.zeros((4, 2)), np.zeros((4, 3)))


def test_band_weighted_auc_hand_computed():
    # ROC vertices (0,0) (0,.5) (.5,.5) (.5,1) (1,1). Band [0,.4] is full: area .4, weight 2.
    # Band [.4,1]: height .1 on x in (0,.5) and .6 on (.5,1): area .35. (0.8 + 0.35) / 1.4.
    score = band_weighted_roc_auc(
        np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.3, 0.1]), **ALASKA_BANDS
    )
    assert score == pytest.approx(1.15 / 1.4)


def test_band_weighted_auc_splits_curve_segments_at_band_edges():
    # Both values checked by hand and with MLE-bench's alaska2 grade.py (pandas 2.2.3).
    # 3 positives: TPR jumps 1/3 -> 2/3 at FPR .25, crossing the 0.4 edge inside a segment.
    # Band [0,.4]: 1/3 * .25 + .4 * .75; band [.4,1]: (2/3 - .4) * .5 + .6 * .25.
    y = np.array([1, 0, 1, 0, 0, 1, 0])
    s = np.array([0.9, 0.85, 0.6, 0.55, 0.5, 0.4, 0.3])
    assert band_weighted_roc_auc(y, s, **ALASKA_BANDS) == pytest.approx(0.75)
    # 5 positives: 0.4 is a vertex. Band [0,.4] full (.4); band [.4,1]: (.2 + .6) / 3.
    y5 = np.array([1, 1, 0, 1, 0, 1, 1, 0])
    s5 = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.2, 0.1])
    assert band_weighted_roc_auc(y5, s5, **ALASKA_BANDS) == pytest.approx((0.8 + 0.8 / 3) / 1.4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_band_weighted_auc_with_equal_weights_is_plain_auc(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(300) < 0.3).astype(int)
    s = np.round(rng.random(300), 2)  # rounding makes ties
    plain = roc_auc(y, s)
    assert band_weighted_roc_auc(y, s, (0.0, 0.4, 1.0), (1.0, 1.0)) == pytest.approx(plain)
    assert band_weighted_roc_auc(y, s, (0.0, 0.25, 0.5, 1.0), (3.0, 3.0, 3.0)) == pytest.approx(
        plain
    )


def test_band_weighted_auc_extremes():
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.2, 0.7, 0.8, 0.3, 0.9])
    assert band_weighted_roc_auc(y, s, **ALASKA_BANDS) == pytest.approx(1.0)
    assert band_weighted_roc_auc(y, 1 - s, **ALASKA_BANDS) == pytest.approx(0.0)


def test_band_weighted_auc_needs_one_weight_per_band():
    with pytest.raises(ValueError, match="weight"):
        band_weighted_roc_auc(np.array([0, 1]), np.array([0.1, 0.9]), (0.0, 0.4, 1.0), (1.0,))
