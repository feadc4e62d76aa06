"""Metric functions of the numeric group, and the checks it added to checks.py.

Expected values are worked out by hand in the comments.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from services.grader.competitions.base import InvalidSubmission
from services.grader.competitions.checks import (
    integer_classes,
    label_sets_text,
    submission_in_answer_order,
    truncated_integers,
)
from services.grader.metrics import correlation, fscore, regression


def test_rmse_mae_rmsle():
    # errors 3 and -4: RMSE sqrt((9 + 16) / 2), MAE 3.5
    assert regression.rmse([0, 0], [3, -4]) == pytest.approx(math.sqrt(12.5))
    assert regression.mae([0, 0], [3, -4]) == 3.5
    # log1p(e - 1) = 1 against log1p(0) = 0 on one of two rows: sqrt(1 / 2)
    assert regression.rmsle([0, 0], [math.e - 1, 0]) == pytest.approx(math.sqrt(0.5))
    with pytest.raises(ValueError):
        regression.rmsle([0], [-1])


def test_mean_log_mae_by_group_averages_logs_over_sorted_groups():
    # group a: MAE 1; group b: MAE e  ->  (log 1 + log e) / 2 = 0.5
    value = regression.mean_log_mae_by_group(
        np.array([0.0, 0.0, 0.0]), np.array([math.e, 1.0, -1.0]), np.array(["b", "a", "a"])
    )
    assert value == pytest.approx(0.5)
    exact = regression.mean_log_mae_by_group(np.zeros(2), np.zeros(2), np.array(["a", "b"]))
    assert exact == -math.inf


def test_laplace_log_likelihood_floors_sigma_and_caps_error():
    # sigma 10 -> 70, error 5000 -> 1000: -sqrt2 * 1000 / 70 - log(sqrt2 * 70)
    value = regression.laplace_log_likelihood(np.array([0.0]), np.array([5000.0]), np.array([10.0]))
    assert value == pytest.approx(-math.sqrt(2) * 1000 / 70 - math.log(math.sqrt(2) * 70))
    assert isinstance(value, np.float64)


def test_mean_angular_error_in_radians():
    # Pole to equator is a right angle; equal directions are 0 apart.
    value = regression.mean_angular_error(
        np.array([0.0, 1.0]),
        np.array([0.0, 1.0]),
        np.array([0.0, 1.0]),
        np.array([math.pi / 2, 1.0]),
    )
    assert value == pytest.approx(math.pi / 4, abs=1e-7)


def test_haversine_and_trip_percentiles():
    # One degree of latitude on a 6371 km sphere.
    one_degree = regression.haversine_m(
        np.array([0.0]), np.array([0.0]), np.array([1.0]), np.array([0.0])
    )
    assert one_degree[0] == pytest.approx(6_371_000 * math.pi / 180)
    # Trip x: errors 0..100 -> (50 + 95) / 2; trip y: constant 10 -> 10; mean 41.25.
    distances = np.concatenate([np.arange(101.0), np.full(3, 10.0)])
    groups = np.array(["x"] * 101 + ["y"] * 3)
    assert regression.mean_of_group_p50_p95(distances, groups) == pytest.approx((72.5 + 10) / 2)


def test_pearson_and_spearman():
    assert correlation.pearson(np.array([1.0, 2, 3]), np.array([2.0, 4, 6])) == pytest.approx(1)
    # Monotone but not linear: Spearman 1 per column; one anti-ordered column gives -1.
    true = [np.array([1, 2, 3]), np.array([1, 2, 3])]
    assert (
        correlation.mean_column_spearman(true, [np.array([1, 10, 100]), np.array([3, 2, 1])]) == 0
    )
    with pytest.warns(RuntimeWarning):  # scipy warns that a constant input has no correlation
        assert math.isnan(correlation.pearson(np.array([1.0, 2, 3]), np.array([5.0, 5, 5])))


def test_kappa_and_mcc():
    assert correlation.quadratic_weighted_kappa(np.array([0, 1, 2]), np.array([0, 1, 2])) == 1
    # Labels 1,0,1,0 against 1,1,0,0: TP=FP=FN=TN=1, so MCC is 0.
    assert correlation.mcc(np.array([1, 0, 1, 0]), np.array([1, 1, 0, 0])) == 0


@pytest.mark.parametrize(
    ("ranks", "lengths", "expected"),
    [
        ([0, 1, 2], [3], 1.0),
        ([2, 1, 0], [3], -1.0),  # 3 inversions of 3 pairs
        ([1, 0, 2, 0], [3, 1], 1 - 4 * 1 / 6),  # 1 inversion; max 2 * 3 pairs; singletons add 0
    ],
)
def test_kendall_tau_of_orderings(ranks, lengths, expected):
    assert correlation.kendall_tau_of_orderings(
        np.array(ranks), np.array(lengths)
    ) == pytest.approx(expected)


def test_kendall_counts_inversions_across_blocks():
    # A reversed ordering longer than one comparison block has n(n-1)/2 inversions: tau = -1.
    n = 2500
    assert correlation.kendall_tau_of_orderings(np.arange(n)[::-1], np.array([n])) == -1


def test_micro_f1_of_label_sets():
    true = pd.Series(["a b", "c", "a"])
    # Predicted pairs: (0,a) right, (1,a) wrong, (2,a) right, (0,zz) unknown -> ignored.
    pred = pd.Series(["a zz a", "a", "a"])
    # TP 2, |true| 4, |pred| 3: F1 = 4 / 7
    assert fscore.micro_f1_of_label_sets(true, pred) == pytest.approx(4 / 7)
    assert fscore.micro_f1_of_label_sets(pd.Series([""]), pd.Series([""])) == 0.0


def test_macro_and_micro_f1():
    # Class 0: P 1, R 1/2, F1 2/3; class 1: P 1/2, R 1, F1 2/3 -> macro 2/3; accuracy 2/3.
    assert fscore.macro_f1(np.array([0, 0, 1]), np.array([0, 1, 1])) == pytest.approx(2 / 3)
    assert fscore.micro_f1(["x", "x", "y"], ["x", "y", "y"]) == pytest.approx(2 / 3)


def test_probabilistic_f1():
    # Clipped predictions 1, 0.5 on positives and 0.5 on the negative: cTP 1.5, cFP 0.5.
    # precision 0.75, recall 0.75 -> F1 0.75
    value = fscore.probabilistic_f1(np.array([1, 1, 0]), np.array([3.0, 0.5, 0.5]))
    assert value == pytest.approx(0.75)
    assert fscore.probabilistic_f1(np.array([1, 0]), np.array([0.0, 0.0])) == 0.0
    assert fscore.probabilistic_f1(np.array([1, 0]), np.array([np.nan, 0.5])) == 0.0


def test_integer_classes():
    frame = pd.DataFrame({"y": [1.0, 2.0, 3.0]})
    assert integer_classes(frame, "y").tolist() == [1, 2, 3]
    with pytest.raises(InvalidSubmission, match=r"whole-number.*2\.5"):
        integer_classes(pd.DataFrame({"y": [1, 2.5]}), "y")
    with pytest.raises(InvalidSubmission, match="NaN"):
        integer_classes(pd.DataFrame({"y": [1, np.nan]}), "y")


def test_truncated_integers_follow_python_int():
    assert truncated_integers(pd.DataFrame({"y": [3.7, -3.7, True]}), "y").tolist() == [3, -3, 1]
    assert truncated_integers(pd.DataFrame({"y": ["12", " 4 "]}), "y").tolist() == [12, 4]
    with pytest.raises(InvalidSubmission, match="'x1'"):
        truncated_integers(pd.DataFrame({"y": ["12", "x1"]}), "y")


def test_label_sets_text_turns_numeric_columns_back_into_labels():
    assert label_sets_text(pd.DataFrame({"y": [13.0, np.nan]}), "y").tolist() == ["13", ""]
    assert label_sets_text(pd.DataFrame({"y": ["1 2", np.nan]}), "y").tolist() == ["1 2", ""]
    with pytest.raises(InvalidSubmission, match="labels"):
        label_sets_text(pd.DataFrame({"y": [1.5]}), "y")


def test_submission_in_answer_order_pairs_by_id_in_answer_order():
    answers = pd.DataFrame({"id": [3, 1, 2]})
    submission = pd.DataFrame({"id": [1.0, 2.0, 3.0], "p": ["a", "b", "c"]})
    assert submission_in_answer_order(submission, answers, "id")["p"].tolist() == ["c", "a", "b"]
    for ids in ([1, 2, 2], [1, 2, 4]):
        with pytest.raises(InvalidSubmission, match="expected ids"):
            submission_in_answer_order(submission.assign(id=ids), answers, "id")
