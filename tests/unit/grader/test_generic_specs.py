"""Metric-named specs for competitions in mleb's own format."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from services.common.errors import NotFoundError
from services.grader.bundles import MetricRef, spec_for
from services.grader.competitions.base import InvalidSubmission
from services.grader.generic_specs import generic_spec

ANSWERS = pd.DataFrame({"id": [3, 1, 2, 4], "y": [1, 0, 1, 0], "v": [1.0, 2.0, 3.0, 4.0]})


def _grade(metric: str, submission: pd.DataFrame, targets=("y",)) -> float:
    spec = generic_spec("own", metric, ["id"], list(targets))
    assert spec is not None
    return spec.grade(submission, ANSWERS.copy())


@pytest.mark.parametrize(
    ("metric", "targets", "rows", "expected"),
    [
        # ids in another order than the answers: rows pair on id.
        ("accuracy", ("y",), {"id": [1, 2, 3, 4], "y": [0, 0, 1, 0]}, 0.75),
        ("auc-roc", ("y",), {"id": [1, 2, 3, 4], "y": [0.1, 0.4, 0.35, 0.8]}, 0.5),
        ("roc-auc", ("y",), {"id": [4, 3, 2, 1], "y": [0.0, 1.0, 1.0, 0.0]}, 1.0),
        ("log-loss", ("y",), {"id": [1, 2, 3, 4], "y": [0.5, 0.5, 0.5, 0.5]}, math.log(2)),
        ("macro-f1", ("y",), {"id": [1, 2, 3, 4], "y": [0, 1, 1, 0]}, 1.0),
        ("rmse", ("v",), {"id": [1, 2, 3, 4], "v": [2.0, 3.0, 1.0, 6.0]}, 1.0),
        ("mae", ("v",), {"id": [1, 2, 3, 4], "v": [2.0, 3.0, 2.0, 6.0]}, 0.75),
    ],
)
def test_metric_values_pair_rows_by_id(metric, targets, rows, expected):
    assert _grade(metric, pd.DataFrame(rows), targets) == pytest.approx(expected)


@pytest.mark.parametrize(
    "rows",
    [
        {"id": [1, 2, 3], "y": [0, 1, 1]},  # fewer rows
        {"id": [1, 2, 3, 9], "y": [0, 1, 1, 0]},  # unknown id
        {"id": [1, 2, 3, 4]},  # missing target
        {"id": [1, 2, 3, 4], "y": [0, None, 1, 0]},  # missing value
    ],
)
def test_bad_submissions_are_invalid(rows):
    for metric in ("accuracy", "auc-roc", "rmse"):
        with pytest.raises(InvalidSubmission):
            _grade(metric, pd.DataFrame(rows))


def test_regression_rejects_text_predictions():
    with pytest.raises(InvalidSubmission):
        _grade("rmse", pd.DataFrame({"id": [1, 2, 3, 4], "v": ["a", "b", "c", "d"]}), ("v",))


def test_unsupported_metrics_and_shapes_have_no_spec():
    assert generic_spec("own", "bleu", ["id"], ["y"]) is None
    assert generic_spec("own", "rmse", ["a", "b"], ["y"]) is None
    assert generic_spec("own", "accuracy", ["id"], []) is None
    with pytest.raises(NotFoundError, match="bleu"):
        spec_for("own", MetricRef("bleu", ["id"], ["y"]))


def test_mlebench_ids_keep_their_own_spec():
    spec = spec_for("spaceship-titanic", MetricRef("rmse", ["id"], ["y"]))
    assert spec.id == "spaceship-titanic"
    with pytest.raises(InvalidSubmission, match="PassengerId"):
        spec.grade(pd.DataFrame({"id": [1], "y": [1.0]}), pd.DataFrame({"id": [1], "y": [1.0]}))
