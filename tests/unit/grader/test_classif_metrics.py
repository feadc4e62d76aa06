"""Unit tests for services.grader.metrics.classification."""

import math

import numpy as np
import pytest

from services.grader.metrics import classification as m


def test_accuracy_counts_equal_labels():
    assert m.accuracy(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 0])) == 0.5


def test_accuracy_of_text_against_numbers_follows_scikit_learn_1_5():
    # Observed with scikit-learn 1.5.2 (MLE-bench's): two labels on each side raise TypeError;
    # otherwise the mix is "multiclass" and nothing matches (0.0). scikit-learn 1.9 always raises.
    with pytest.raises(TypeError):
        m.accuracy(np.array([1, 2]), np.array(["1", "2"], dtype=object))
    assert m.accuracy(np.array([1, 2, 3]), np.array(["1", "2", "3"], dtype=object)) == 0.0
    assert m.accuracy(np.array(["a", "b", "c"], dtype=object), [1, 1, 1]) == 0.0
    with pytest.raises(ValueError):  # fractional numbers against text: "continuous"
        m.accuracy(np.array(["a", "b", "c"], dtype=object), [1.5, 1, 1])


def test_exact_match_rate_compares_text_without_type_checks():
    assert m.exact_match_rate(np.array(["a", "b", "nan"]), np.array(["a", "c", "nan"])) == 2 / 3


def test_binary_log_loss_by_hand():
    # -(log 0.8 + log 0.6) / 2 for labels 1, 0 and P(1) = 0.8, 0.4
    expected = -(math.log(0.8) + math.log(0.6)) / 2
    assert m.log_loss(np.array([1, 0]), np.array([0.8, 0.4])) == pytest.approx(expected, abs=1e-15)


def test_one_hot_log_loss_by_hand_and_clipping():
    y_true = np.array([[1, 0, 0], [0, 0, 1]])
    y_proba = np.array([[0.5, 0.25, 0.25], [0.1, 0.2, 0.7]])
    expected = -(math.log(0.5) + math.log(0.7)) / 2
    assert m.log_loss(y_true, y_proba) == pytest.approx(expected, abs=1e-15)
    # A confident miss is clipped at float64 eps, not infinite.
    worst = m.log_loss(np.array([[1, 0]]), np.array([[0.0, 1.0]]))
    assert worst == pytest.approx(-math.log(np.finfo(float).eps))


def test_weighted_binary_log_loss_by_hand():
    y_true = np.array([[1, 0]])
    y_proba = np.array([[0.5, 0.5]])
    # Row loss = (w+ * ln2 + w- * ln2) / (w+ + w-) = ln 2 whatever the weights.
    assert m.weighted_binary_log_loss(
        y_true, y_proba, np.array([1.0, 3.0]), np.array([2.0, 5.0])
    ) == pytest.approx(math.log(2))
    # Weights matter once the cells differ: (2 * -ln .9 + 3 * -ln .5) / (2 + 3).
    got = m.weighted_binary_log_loss(
        np.array([[1, 0]]), np.array([[0.9, 0.5]]), np.array([1.0, 3.0]), np.array([2.0, 5.0])
    )
    assert got == pytest.approx((-2 * math.log(0.9) + 3 * math.log(2)) / 5)


def test_kl_divergence_matches_kaggle_examples():
    # The two examples documented with Kaggle's KL-divergence metric.
    y_true = np.array([[0, 1], [1, 0], [1, 0], [0, 1]])
    y_proba = np.array([[0.1, 0.9], [0.9, 0.1], [0.8, 0.2], [0.35, 0.65]])
    assert m.kl_divergence(y_true, y_proba) == pytest.approx(0.216161, abs=1e-6)
    y_true = np.array([[0, 0.1, 0.9], [0.5, 0.5, 0], [0.5, 0.5, 0]])
    y_proba = np.array([[0.2, 0.1, 0.7], [0.3, 0.5, 0.2], [0.5, 0.5, 0]])
    assert m.kl_divergence(y_true, y_proba) == pytest.approx(0.160531, abs=1e-6)
    assert m.kl_divergence(y_true, y_true) == pytest.approx(0.0, abs=1e-12)


def test_row_sums_do_not_depend_on_memory_layout():
    values = np.random.default_rng(0).random((50, 8)) * 1e3
    c_sums = m.kl_divergence(values / values.sum(1, keepdims=True), np.full((50, 8), 1 / 8))
    f_values = np.asfortranarray(values)
    f_sums = m.kl_divergence(f_values / f_values.sum(1, keepdims=True), np.full((50, 8), 1 / 8))
    assert c_sums == f_sums
