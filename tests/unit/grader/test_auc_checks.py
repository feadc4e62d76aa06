"""Unit tests for the id-alignment and score checks the AUC group added to checks.py."""

import contextlib
from unittest import mock

import numpy as np
import pandas as pd
import pytest

from services.grader.competitions.base import InvalidSubmission
from services.grader.competitions.checks import (
    align_on_ids,
    finite_scores,
    probability_auc_inputs,
    require_exact_columns,
    require_probabilities,
    roc_auc_inputs,
)
from services.grader.competitions.id_order import freeze
from services.grader.metrics import auc

ANSWERS = pd.DataFrame({"id": [30, 10, 20], "y": [1, 0, 1]})


def test_align_on_ids_sorts_both_sides_and_pairs_rows_by_id():
    sub = pd.DataFrame({"id": [20, 30, 10], "p": [0.2, 0.3, 0.1]})
    sub_sorted, ans_sorted = align_on_ids(sub, ANSWERS, "id")
    assert sub_sorted["id"].tolist() == [10, 20, 30]
    assert sub_sorted["p"].tolist() == [0.1, 0.2, 0.3]
    assert ans_sorted["y"].tolist() == [0, 1, 1]


def test_align_on_ids_matches_ids_by_value_across_dtypes():
    # The reference compares values, so 10.0 in a submission matches 10 in the answers.
    sub = pd.DataFrame({"id": [10.0, 20.0, 30.0], "p": [0.1, 0.2, 0.3]})
    sub_sorted, _ = align_on_ids(sub, ANSWERS, "id")
    assert sub_sorted["p"].tolist() == [0.1, 0.2, 0.3]


def test_align_on_ids_keeps_the_order_of_repeated_ids():
    answers = pd.DataFrame({"id": ["b", "a", "b"], "y": [1, 0, 0]})
    sub = pd.DataFrame({"id": ["b", "a", "b"], "p": [0.9, 0.5, 0.1]})
    sub_sorted, ans_sorted = align_on_ids(sub, answers, "id")
    assert list(zip(ans_sorted["y"], sub_sorted["p"], strict=True)) == [
        (0, 0.5),
        (1, 0.9),
        (0, 0.1),
    ]


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ([10, 20, 99], ["1 row(s) have unexpected ids, e.g. 99", "1 expected id(s) are missing"]),
        ([10, 20, 20], ["1 row(s) repeat an id, e.g. 20", "1 expected id(s) are missing"]),
        (["10", "20", "30"], ["3 row(s) have unexpected ids, e.g. '10', '20', '30'"]),
    ],
)
def test_align_on_ids_explains_mismatches_from_the_submission(ids, expected):
    sub = pd.DataFrame({"id": ids, "p": [0.1, 0.2, 0.3]})
    with pytest.raises(InvalidSubmission) as err:
        align_on_ids(sub, ANSWERS, "id")
    for fragment in expected:
        assert fragment in str(err.value)


def test_align_on_ids_checks_length_and_column():
    with pytest.raises(InvalidSubmission, match="2 rows, but 3"):
        align_on_ids(pd.DataFrame({"id": [10, 20]}), ANSWERS, "id")
    with pytest.raises(InvalidSubmission, match="missing required column"):
        align_on_ids(pd.DataFrame({"ID": [10, 20, 30]}), ANSWERS, "id")


def test_align_on_ids_shortens_long_ids_in_messages():
    sub = pd.DataFrame({"id": ["x" * 500, "a", "b"]})
    with pytest.raises(InvalidSubmission) as err:
        align_on_ids(sub, ANSWERS, "id")
    assert "x" * 100 not in str(err.value)
    assert "..." in str(err.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["0.5", "abc", None], "must be numeric, but holds values such as 'abc'"),
        ([0.5, np.nan, 0.1], "1 missing/NaN value"),
        ([0.5, np.inf, 0.1], "infinite value(s): inf"),
        ([0.5, 1.5, -0.25], "2 value(s) outside, e.g. 1.5, -0.25"),
    ],
)
def test_require_probabilities_rejects(values, message):
    with pytest.raises(InvalidSubmission) as err:
        require_probabilities(pd.DataFrame({"p": values}), ["p"])
    assert message in str(err.value)


def test_require_probabilities_accepts_numbers_and_booleans_in_range():
    require_probabilities(pd.DataFrame({"p": [0, 1, 0.5], "q": [True, False, True]}), ["p", "q"])


def test_require_probabilities_rejects_numeric_text():
    # The reference's min/max range check fails on text, even text that reads as numbers.
    with pytest.raises(InvalidSubmission, match="must be numeric"):
        require_probabilities(pd.DataFrame({"p": ["0.5", "0.25"]}), ["p"])


def test_finite_scores_converts_like_float_and_keeps_column_order():
    frame = pd.DataFrame({"a": [True, False], "b": ["1_0", "-2.5"], "c": [7, 8]})
    np.testing.assert_array_equal(
        finite_scores(frame, ["c", "a", "b"]), [[7.0, 1.0, 10.0], [8.0, 0.0, -2.5]]
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["1", "x"], "must be numeric, but holds values such as 'x'"),
        ([1.0, np.nan], "missing/NaN"),
        ([1.0, -np.inf], "infinite value(s): -inf"),
    ],
)
def test_finite_scores_rejects(values, message):
    with pytest.raises(InvalidSubmission) as err:
        finite_scores(pd.DataFrame({"s": values}), ["s"])
    assert message in str(err.value)


def test_require_exact_columns():
    require_exact_columns(pd.DataFrame(columns=["b", "a"]), ["a", "b"])
    with pytest.raises(InvalidSubmission, match=r"unexpected column\(s\) \['c'\]"):
        require_exact_columns(pd.DataFrame(columns=["a", "b", "c"]), ["a", "b"])
    with pytest.raises(InvalidSubmission, match="missing required column"):
        require_exact_columns(pd.DataFrame(columns=["a"]), ["a", "b"])


def test_probability_auc_inputs_returns_aligned_label_and_score_arrays():
    sub = pd.DataFrame({"y": [0.2, 0.3, 0.1], "id": [20, 30, 10], "note": ["x", "y", "z"]})
    y_true, y_score = probability_auc_inputs(sub, ANSWERS, "id", ["y"])
    np.testing.assert_array_equal(y_true, [[0], [1], [1]])
    np.testing.assert_array_equal(y_score, [[0.1], [0.2], [0.3]])


@pytest.mark.parametrize("fast_path", [True, False])
@pytest.mark.parametrize("seed", range(40))
def test_roc_auc_in_the_rows_own_order_is_the_sorted_pairs_auc_to_the_bit(seed, fast_path):
    """roc_auc_inputs leaves frozen answers and a submission in their order (no permutation);
    the AUC is the one of the sorted pairs, bit for bit, with ties, repeated scores and several
    label columns, on our fast path and on scikit-learn's."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    labels = [f"y{j}" for j in range(int(rng.integers(1, 4)))]
    ids = rng.permutation(n) * 7
    truth = {name: rng.integers(0, 2, n) for name in labels}
    for name in labels:
        truth[name][:2] = [0, 1]  # both classes in every column
    scores = {name: np.round(rng.random(n), int(rng.integers(0, 4))) for name in labels}
    answers = freeze(pd.DataFrame({"id": ids, **truth}))
    submission = pd.DataFrame({"id": ids, **scores})
    unsorted_true, unsorted_score = roc_auc_inputs(submission, answers, "id", labels)
    assert (unsorted_score == submission[labels].to_numpy()).all()  # not permuted
    sorted_true, sorted_score = probability_auc_inputs(
        submission,
        answers.copy(),
        "id",
        labels,  # writable answers: the reference's sort
    )
    # The reference's pairs are the same pairs, in id order.
    order = np.argsort(ids, kind="stable")
    assert (sorted_score == unsorted_score[order]).all()
    assert (sorted_true == unsorted_true[order]).all()
    off = mock.patch.object(auc, "_binary_roc_auc", lambda *args: None)
    with off if not fast_path else contextlib.nullcontext():
        unsorted = auc.mean_column_roc_auc(unsorted_true, unsorted_score)
        reference = auc.mean_column_roc_auc(sorted_true, sorted_score)
    assert np.float64(unsorted).tobytes() == np.float64(reference).tobytes()


def test_roc_auc_inputs_pairs_by_id_when_the_ids_come_in_another_order():
    answers = freeze(pd.DataFrame({"id": [30, 10, 20], "p": [1, 0, 1]}))
    sub = pd.DataFrame({"id": [20, 30, 10], "p": [0.2, 0.3, 0.1]})
    y_true, y_score = roc_auc_inputs(sub, answers, "id", ["p"])
    assert list(zip(y_true[:, 0], y_score[:, 0], strict=True)) == [(0, 0.1), (1, 0.2), (1, 0.3)]
