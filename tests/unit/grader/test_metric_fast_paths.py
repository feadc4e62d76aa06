"""The metrics' fast paths give scikit-learn's float, bit for bit, and its errors, on any input.

Each property draws inputs inside and outside what a fast path takes (one class, three
classes, NaN, infinities, values outside [0, 1], float32, ties, extreme values) and compares
with the plain scikit-learn call.
"""

from __future__ import annotations

import warnings
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.metrics import log_loss as sklearn_log_loss

from services.grader.metrics import auc
from services.grader.metrics.classification import accuracy, log_loss

lengths = st.integers(1, 60)
probabilities = st.one_of(
    st.floats(0, 1),
    st.sampled_from([0.0, 1.0, 1e-300, 5e-324, 1 - 1e-16, 0.5, np.nextafter(1.0, 0.0)]),
    st.floats(allow_nan=True, allow_infinity=True),
)
# Few distinct values, so that runs of tied scores are common; -0.0 ties with 0.0.
tied_scores = st.sampled_from([0.0, -0.0, 0.25, 0.5, 1.0, 1e-300, 1e300])


def outcome(fn, *args):
    """The float bits, or the exception type: what a grader's decision depends on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return np.float64(fn(*args)).tobytes()
        except Exception as exc:  # the type is the outcome
            return type(exc)


def sklearn_1_5_log_loss(y_true, y_proba):
    """scikit-learn's log loss as MLE-bench's version (1.5.2) computes it: the installed
    scikit-learn's checks and steps, with scipy's xlogy (the C library's log) where 1.9 calls
    numpy's log."""
    with mock.patch(
        "sklearn.metrics._classification._xlogy", lambda x, y, xp=None: scipy.special.xlogy(x, y)
    ):
        return sklearn_log_loss(y_true, y_proba)


@st.composite
def label_vectors(draw, n):
    kind = draw(st.sampled_from(["bool", "int64", "int32", "float", "text"]))
    pool = draw(
        st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=3, unique=True)
        if kind != "bool"
        else st.just([False, True])
    )
    values = draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n))
    if kind == "float":
        return np.asarray(values, dtype=float)
    if kind == "text":
        return np.asarray([str(v) for v in values], dtype=object)
    return np.asarray(values, dtype={"bool": bool, "int64": np.int64, "int32": np.int32}[kind])


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_log_loss_equals_scikit_learn(data):
    n = data.draw(lengths)
    y_true = data.draw(label_vectors(n))
    dtype = data.draw(st.sampled_from([np.float64, np.float64, np.float32]))
    drawn = data.draw(st.lists(probabilities, min_size=n, max_size=n))
    with np.errstate(over="ignore"):  # float32 turns huge values into infinities: fine
        y_proba = np.asarray(drawn, dtype=dtype)
    assert outcome(log_loss, y_true, y_proba) == outcome(sklearn_1_5_log_loss, y_true, y_proba)


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(np.int64, st.integers(1, 3000), elements=st.integers(0, 1)),
    st.floats(1e-12, 1),
)
def test_log_loss_equals_scikit_learn_on_long_vectors(y_true, scale):
    # Long enough for numpy's pairwise summation and vectorised log to take several blocks.
    y_proba = np.random.default_rng(len(y_true)).random(len(y_true)) * scale
    assert outcome(log_loss, y_true, y_proba) == outcome(sklearn_1_5_log_loss, y_true, y_proba)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 400),
    st.integers(2, 6),
    st.sampled_from([np.int64, np.float64, bool]),
    st.integers(0, 2**32 - 1),
)
def test_one_hot_log_loss_equals_scikit_learn_1_5(rows, classes, dtype, seed):
    rng = np.random.default_rng(seed)
    y_true = np.eye(classes, dtype=dtype)[rng.integers(0, classes, rows)]
    y_proba = rng.dirichlet(np.ones(classes), rows)
    y_proba[rng.random(y_proba.shape) < 0.05] = 0.0  # confident misses, clipped at eps
    assert outcome(log_loss, y_true, y_proba) == outcome(sklearn_1_5_log_loss, y_true, y_proba)


def test_log_loss_takes_scipy_s_log_where_newer_scikit_learn_takes_numpy_s():
    """Observed on MLE-bench's reference (scikit-learn 1.5.2): 0.013625, which rounds to
    0.01362; numpy's log gives 0.013625000000000002 on AVX-512 machines, which rounds up."""
    y_true = np.array([0, 1])
    y_proba = np.array([0.013532599814388258, 0.9864674001856117])
    assert log_loss(y_true, y_proba) == 0.013625
    assert log_loss(np.eye(2, dtype=np.int64)[y_true], np.c_[1 - y_proba, y_proba]) == 0.013625


def test_log_loss_of_a_boolean_class_column_beside_float_ones():
    """lmsys-chatbot-arena with `False` in one class column: the frame's array holds objects,
    which scikit-learn 1.5.2 turns into float64. Observed on the reference: 0.5214150000000001
    (0.52142); scikit-learn 1.9's numpy log gave 0.521415 (0.52141)."""
    y_true = np.array([[1, 0, 0]])
    y_proba = pd.DataFrame(
        {"a": [0.5936798962961404], "b": [0.4063201037038596], "tie": [False]}
    ).to_numpy()
    assert y_proba.dtype == object
    assert log_loss(y_true, y_proba) == 0.5214150000000001


def sklearn_roc_auc(y_true, y_score):
    """scikit-learn's roc_auc_score as MLE-bench's scikit-learn (1.5.2) behaves: it raises
    ValueError for a single class, where 1.9 warns and returns NaN."""
    if len(np.unique(y_true)) == 1:
        raise ValueError("one class")
    return roc_auc_score(y_true, y_score)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_roc_auc_equals_scikit_learn(data):
    n = data.draw(lengths)
    y_true = data.draw(label_vectors(n))
    dtype = data.draw(st.sampled_from([np.float64, np.float64, np.float32]))
    length = data.draw(st.sampled_from([n, n, n, n + 1]))
    drawn = data.draw(st.lists(st.one_of(tied_scores, probabilities), min_size=length,
                               max_size=length))  # fmt: skip
    with np.errstate(over="ignore"):
        y_score = np.asarray(drawn, dtype=dtype)
    assert outcome(auc.roc_auc, y_true, y_score) == outcome(sklearn_roc_auc, y_true, y_score)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(2, 5000),
    st.sampled_from(["bool", "int64", "int32", "0-2", "-7-3"]),
    st.sampled_from([0, 1, 2, 3, None, "equal"]),
    st.integers(0, 2**32 - 1),
)
def test_roc_auc_fast_path_equals_scikit_learn_on_long_vectors(n, labels, decimals, seed):
    # Long enough for several runs of ties, drop_intermediate and pairwise summation blocks.
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, 2, n)
    drawn[:2] = 0, 1  # both classes, always
    drawn = rng.permutation(drawn)
    low, high = {"0-2": (0, 2), "-7-3": (-7, 3)}.get(labels, (0, 1))
    y_true = np.where(drawn == 1, high, low).astype(labels if labels[0] in "bi" else np.int64)
    if decimals == "equal":
        y_score = np.full(n, 0.3)
    else:
        y_score = rng.random(n) if decimals is None else rng.random(n).round(decimals)
    assert auc._binary_roc_auc(y_true, y_score) is not None  # the fast path decided
    assert outcome(auc.roc_auc, y_true, y_score) == outcome(roc_auc_score, y_true, y_score)


@pytest.mark.parametrize(
    ("y_true", "y_score"),
    [
        (np.array([1, 1, 1]), np.array([0.5, 0.2, 0.9])),  # one class
        (np.array([False, False]), np.array([0.5, 0.2])),
        (np.array([0, 1, 2]), np.array([0.5, 0.2, 0.9])),  # three classes
        (np.array([0, 1, 1]), np.array([0.5, np.nan, 0.9])),
        (np.array([0, 1, 1]), np.array([0.5, np.inf, 0.9])),
        (np.array([0, 1, 1]), np.array([0.5, 0.9])),  # lengths differ
    ],
)
def test_roc_auc_rejects_what_scikit_learn_rejects(y_true, y_score):
    assert auc._binary_roc_auc(y_true, y_score) is None
    with pytest.raises(ValueError):
        auc.roc_auc(y_true, y_score)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_accuracy_equals_scikit_learn(data):
    n = data.draw(lengths)
    y_true = data.draw(label_vectors(n))
    y_pred = data.draw(label_vectors(data.draw(st.sampled_from([n, n, n + 1]))))
    expected = outcome(accuracy_score, y_true, y_pred)
    if expected is TypeError or y_true.dtype == object or y_pred.dtype == object:
        return  # mixed text and numbers: accuracy() follows scikit-learn 1.5 there on purpose
    assert outcome(accuracy, y_true, y_pred) == expected


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(bool, st.integers(1, 5000)), st.integers(0, 2**32 - 1))
def test_accuracy_of_booleans_equals_scikit_learn_on_long_vectors(y_true, seed):
    y_pred = np.random.default_rng(seed).random(len(y_true)) < 0.5
    assert outcome(accuracy, y_true, y_pred) == outcome(accuracy_score, y_true, y_pred)


@pytest.mark.parametrize(
    ("y_true", "y_proba"),
    [
        (np.array([1, 1, 1]), np.array([0.5, 0.2, 0.9])),  # one class
        (np.array([0, 1, 2]), np.array([0.5, 0.2, 0.9])),  # three classes
        (np.array([0, 1, 1]), np.array([0.5, np.nan, 0.9])),
        (np.array([0, 1, 1]), np.array([0.5, 1.5, 0.9])),
        (np.array([0, 1, 1]), np.array([0.5, -0.1, 0.9])),
    ],
)
def test_log_loss_rejects_what_scikit_learn_rejects(y_true, y_proba):
    with pytest.raises(ValueError):
        sklearn_log_loss(y_true, y_proba)
    with pytest.raises(ValueError):
        log_loss(y_true, y_proba)
