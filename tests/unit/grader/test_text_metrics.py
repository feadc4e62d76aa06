"""Unit tests of the text/sequence/retrieval metric families (services/grader/metrics)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from services.grader.metrics.edit_distance import (
    mean_levenshtein,
    pairwise_levenshtein,
    token_error_rate,
)
from services.grader.metrics.point_in_box import f1_from_counts, match_counts
from services.grader.metrics.ranking import (
    average_precision_at_k,
    label_weighted_lrap,
    mean_average_precision_at_k,
)
from services.grader.metrics.subgroup_auc import bias_weighted_auc, power_mean
from services.grader.metrics.token_sets import first_occurrence, is_in, split_flat
from services.grader.metrics.word_overlap import mean_word_jaccard, word_set_counts


def test_levenshtein_on_strings_and_token_lists():
    assert pairwise_levenshtein(["kitten", "abc"], ["sitting", "abc"]).tolist() == [3, 0]
    assert mean_levenshtein(["kitten", "abc"], ["sitting", "abd"]) == 2.0
    # 1 + 2 edits over 3 + 2 true tokens
    assert token_error_rate([[1, 2, 3], [4, 5]], [[1, 3], [9]]) == pytest.approx(3 / 5)


def test_token_error_rate_without_true_tokens_is_undefined():
    with pytest.raises(ZeroDivisionError):
        token_error_rate([[]], [[1]])


def test_levenshtein_needs_aligned_inputs():
    with pytest.raises(ValueError):
        pairwise_levenshtein(["a"], ["a", "b"])


def test_word_jaccard_lowercases_and_uses_sets():
    y_true = pd.Series(["Good good DAY", "a b", "x"])
    y_pred = pd.Series(["good", "b c", "y"])
    intersection, union = word_set_counts(y_true, y_pred)
    assert intersection.tolist() == [1, 1, 0]
    assert union.tolist() == [2, 3, 2]
    assert mean_word_jaccard(y_true, y_pred) == pytest.approx((1 / 2 + 1 / 3 + 0) / 3)


def test_word_jaccard_splits_on_any_whitespace():
    assert mean_word_jaccard(pd.Series(["a\tb\u00a0c"]), pd.Series(["a b c"])) == 1.0


def test_word_jaccard_of_two_empty_texts():
    y_true, y_pred = pd.Series(["", "a"]), pd.Series(["  ", "a"])
    with pytest.raises(ZeroDivisionError):
        mean_word_jaccard(y_true, y_pred)
    assert mean_word_jaccard(y_true, y_pred, both_empty=0.0) == 0.5


def test_split_flat_matches_str_split():
    texts = pd.Series(["a b", "", "c  d", " e"])
    rows, tokens = split_flat(texts, " ")
    expected = [(i, t) for i, text in enumerate(texts) for t in text.split(" ")]
    assert list(zip(rows.tolist(), tokens.tolist(), strict=True)) == expected


def test_set_primitives():
    assert first_occurrence(np.array([5, 3, 5, 3, 7])).tolist() == [True, True, False, False, True]
    assert is_in(np.array([1, 4, 9]), np.array([1, 9])).tolist() == [True, False, True]
    assert is_in(np.array([1]), np.array([], dtype=np.int64)).tolist() == [False]


@pytest.mark.parametrize(
    ("actual", "predicted", "k", "expected"),
    [
        ("a b", "a b", 5, 1.0),
        ("a b", "b x a", 5, (1 / 1 + 2 / 3) / 2),  # hits at ranks 1 and 3
        ("a", "x a a", 5, 1 / 2),  # a repeated guess counts once
        ("a", "a a", 5, 1.0),
        ("a", "x y z v w a", 5, 0.0),  # beyond k
        ("a b c", "a b", 2, 1.0),  # divided by min(3 relevant, k=2)
        ("a  b", "x  b", 5, (1 / 2 + 2 / 3) / 3),  # "" is an item on both sides
        ("a a", "a", 5, 1.0),  # repeats in the truth do not count twice
    ],
)
def test_average_precision_at_k(actual, predicted, k, expected):
    result = average_precision_at_k(pd.Series([actual]), pd.Series([predicted]), k)
    assert result.tolist() == [pytest.approx(expected)]


def test_map_at_k_averages_rows_independently():
    # Row keys must not leak between rows: "a" relevant in row 0 only.
    actual, predicted = pd.Series(["a", "b"]), pd.Series(["a", "a b"])
    assert average_precision_at_k(actual, predicted, 5).tolist() == [1.0, 0.5]
    assert mean_average_precision_at_k(actual, predicted, 5) == 0.75


def test_label_weighted_lrap_weights_labels_and_skips_unlabelled_rows():
    truth = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]])
    scores = np.array([[0.9, 0.1, 0.0], [0.9, 0.5, 0.1], [0.3, 0.2, 0.1]])
    # Row 0: label ranked 1st -> 1. Row 1: labels ranked 2nd (1/2) and 3rd (2/3).
    # Each true label weighs the same: (1 + 1/2 + 2/3) / 3.
    assert label_weighted_lrap(truth, scores) == pytest.approx((1 + 1 / 2 + 2 / 3) / 3)


def test_power_mean():
    assert power_mean([0.5, 0.5], -5) == pytest.approx(0.5)
    assert power_mean([1.0, 0.5], -5) == pytest.approx(((1 + 0.5**-5) / 2) ** (-1 / 5))


def test_bias_weighted_auc_is_one_for_a_perfect_ranking():
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    groups = [np.array([1, 1, 0, 0, 1, 1, 0, 0], dtype=bool)]
    assert bias_weighted_auc(y, y.astype(float), groups) == 1.0


def test_bias_weighted_auc_hand_computed():
    y = np.array([0, 1, 0, 1])
    score = np.array([0, 1, 1, 1])
    in_group = np.array([True, True, False, False])
    # overall AUC 0.75; subgroup (rows 0,1) 1.0; BPSN (rows 0,3) 1.0; BNSP (rows 1,2) 0.5.
    # One subgroup, so each power mean is the AUC itself: 0.25 * (0.75 + 1 + 1 + 0.5).
    assert bias_weighted_auc(y, score, [in_group]) == pytest.approx(0.8125)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
def test_bias_weighted_auc_of_degenerate_subsets():
    # Subgroup {row 0} has one class; BNSP selects no row at all. Both raise ValueError, as
    # roc_auc_score does in MLE-bench's scikit-learn (1.5.2).
    with pytest.raises(ValueError):
        bias_weighted_auc(np.array([0, 1]), np.array([0, 1]), [np.array([True, False])])
    y, in_group = np.array([0, 1, 0, 1]), np.array([True, False, True, True])
    with pytest.raises(ValueError):
        bias_weighted_auc(y, y.astype(float), [~in_group | (y == 0)])


def _boxes(rows):
    return pd.DataFrame(rows, columns=["page", "label", "xmin", "xmax", "ymin", "ymax"])


def _points(rows):
    return pd.DataFrame(rows, columns=["page", "label", "x", "y"])


def test_point_in_box_matching_is_greedy_in_box_order():
    boxes = _boxes([(0, "A", 0, 10, 0, 10), (0, "A", 0, 4, 0, 4), (1, "B", 0, 10, 0, 10)])
    # The first box claims the first fitting point (2,2), which is also the only point that
    # fits the second box: so one box stays unmatched and the point (8,8) is a false positive.
    points = _points([(0, "A", 2, 2), (0, "A", 8, 8), (1, "A", 5, 5), (1, "B", 10, 5)])
    assert match_counts(boxes, points) == (1, 3, 2)


def test_point_on_the_box_edge_does_not_count():
    boxes = _boxes([(0, "A", 0, 10, 0, 10)])
    assert match_counts(boxes, _points([(0, "A", 0, 5)])) == (0, 1, 1)


def test_f1_from_counts():
    assert f1_from_counts(1, 2, 1) == pytest.approx(0.4)
    assert f1_from_counts(0, 0, 3) == 0.0
    assert f1_from_counts(0, 2, 3) == 0.0


def _naive_ap(actual: str, predicted: str, k: int) -> float:
    relevant, guesses = set(actual.split(" ")), predicted.split(" ")[:k]
    score, hits = 0.0, 0.0
    for rank, guess in enumerate(guesses):
        if guess in relevant and guess not in guesses[:rank]:
            hits += 1.0
            score += hits / (rank + 1.0)
    return score / min(len(relevant), k)


def _naive_jaccard(a: str, b: str) -> float:
    x, y = set(a.lower().split()), set(b.lower().split())
    return len(x & y) / len(x | y) if x | y else 0.0


def test_vectorised_metrics_equal_a_per_row_loop_bit_for_bit():
    rng = np.random.default_rng(7)
    items = [str(i) for i in range(25)] + ["", "A", "a"]
    actual = pd.Series([" ".join(rng.choice(items, rng.integers(1, 15))) for _ in range(3000)])
    predicted = pd.Series([" ".join(rng.choice(items, rng.integers(1, 20))) for _ in range(3000)])
    for k in (5, 12):
        naive = np.mean([_naive_ap(a, p, k) for a, p in zip(actual, predicted, strict=True)])
        assert mean_average_precision_at_k(actual, predicted, k) == naive
    naive = np.mean([_naive_jaccard(a, p) for a, p in zip(actual, predicted, strict=True)])
    assert mean_word_jaccard(actual, predicted, both_empty=0.0) == naive
