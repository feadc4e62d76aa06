"""Scores to the last bit of MLE-bench's reference (numpy 1.26.4, scikit-learn 1.5.2, scipy
1.17.1) on inputs long enough for the arithmetic itself to matter, not only the semantics.

numpy 2.3 and later add a long float64 vector in another order than 1.26 (which adds blocks of
8,192 values in turn), and newer scikit-learn's log loss takes numpy's vectorised log where
1.5.2 takes the C library's. Either moves the last bit of about half these scores, and a
score that sits on a rounding boundary then rounds to another fifth decimal. The expected
values were computed by the reference's libraries on the same seeded inputs; numpy 2.4.6
with scikit-learn 1.9.1 gave other bits for every one of them.
"""

from __future__ import annotations

import numpy as np

from services.grader.metrics.auc import roc_auc
from services.grader.metrics.classification import log_loss
from services.grader.metrics.regression import rmse


def test_numpy_is_the_reference_s():
    """The sums below hold only on numpy 1.26's summation; see pyproject.toml."""
    assert np.__version__ == "1.26.4"


def test_rmse_of_120k_rows():
    rng = np.random.default_rng(2)
    y_true, y_pred = rng.integers(1, 101, 120_000).astype(np.float64), rng.random(120_000) * 100
    assert float(rmse(y_true, y_pred)).hex() == "0x1.46e684ce664ddp+5"


def test_roc_auc_of_60k_distinct_scores():
    rng = np.random.default_rng(0)
    y_true, y_score = rng.integers(0, 2, 60_000), rng.random(60_000)
    assert float(roc_auc(y_true, y_score)).hex() == "0x1.fd615f758210fp-2"


def test_binary_log_loss_of_50k_rows():
    rng = np.random.default_rng(3)
    y_true, y_proba = rng.integers(0, 2, 50_000), rng.random(50_000)
    assert float(log_loss(y_true, y_proba)).hex() == "0x1.feb87d1b97eeep-1"


def test_mean_of_100k_values():
    values = np.random.default_rng(0).random(100_000) * 1000
    assert float(np.mean(values)).hex() == "0x1.f3930337313bfp+8"
