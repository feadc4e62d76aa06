"""Specs built from a metric name, for competitions in mleb's own format.

MLE-bench's competitions each have a hand-written spec in competitions/; a competition that
anyone adds through `mleb registry import` names a metric and its id/target columns instead,
and is graded by one of these. Rows always pair on the (single) id column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.competitions.checks import (
    accuracy_by_id,
    align_on_ids,
    finite_scores,
    labels_by_id,
    probability_auc_inputs,
    rejected_by_metric,
    require_columns,
    roc_auc_inputs,
)
from services.grader.metrics.auc import roc_auc
from services.grader.metrics.classification import log_loss
from services.grader.metrics.fscore import macro_f1
from services.grader.metrics.regression import mae, rmse

Grade = Callable[[pd.DataFrame, Any], float]


def _numeric(error: Callable[[np.ndarray, np.ndarray], float]) -> Callable[..., float]:
    def grade(submission, answers, id_column: str, targets: list[str]) -> float:
        require_columns(submission, [id_column, *targets])
        sub, ans = align_on_ids(submission, answers, id_column)
        return error(ans[targets].to_numpy(dtype=float), finite_scores(sub, targets))

    return grade


def _single_target(build: Callable[..., float]) -> Callable[..., float]:
    def grade(submission, answers, id_column: str, targets: list[str]) -> float:
        if len(targets) != 1:
            raise InvalidSubmission("this metric scores exactly one target column")
        return build(submission, answers, id_column, targets[0])

    return grade


def _accuracy(submission, answers, id_column: str, target: str) -> float:
    return accuracy_by_id(submission, answers, id_column=id_column, target_column=target)


def _auc(submission, answers, id_column: str, target: str) -> float:
    y_true, y_score = roc_auc_inputs(submission, answers, id_column, [target])
    return roc_auc(y_true[:, 0], y_score[:, 0])


def _binary_log_loss(submission, answers, id_column: str, target: str) -> float:
    y_true, y_score = probability_auc_inputs(submission, answers, id_column, [target])
    return log_loss(y_true[:, 0], y_score[:, 0])


def _macro_f1(submission, answers, id_column: str, target: str) -> float:
    y_true, y_pred = labels_by_id(submission, answers, id_column, target)
    with rejected_by_metric(f"Submission column {target!r} holds unusable labels."):
        return macro_f1(y_true.astype(str), pd.Series(y_pred).astype(str).to_numpy())


_METRICS: dict[str, Callable[..., float]] = {
    "accuracy": _single_target(_accuracy),
    "auc-roc": _single_target(_auc),
    "log-loss": _single_target(_binary_log_loss),
    "macro-f1": _single_target(_macro_f1),
    "rmse": _numeric(rmse),
    "mae": _numeric(mae),
}
_ALIASES = {
    "roc-auc": "auc-roc",
    "auc": "auc-roc",
    "binary-log-loss": "log-loss",
    "f1-macro": "macro-f1",
    "root-mean-squared-error": "rmse",
    "mean-absolute-error": "mae",
}
GENERIC_METRICS = sorted({*_METRICS, *_ALIASES})
# Each metric's direction: errors and losses are lower-is-better, the rest higher.
_LOWER_IS_BETTER = {
    "accuracy": False,
    "auc-roc": False,
    "macro-f1": False,
    "log-loss": True,
    "rmse": True,
    "mae": True,
}


def generic_lower_is_better(metric_name: str) -> bool | None:
    """The direction of a metric-named competition's metric, or None for an unknown metric."""
    return _LOWER_IS_BETTER.get(_ALIASES.get(metric_name, metric_name))


def generic_spec(
    competition_id: str,
    metric_name: str,
    id_columns: Sequence[str],
    target_columns: Sequence[str],
) -> CompetitionSpec | None:
    """A spec for a metric-named competition, or None when the metric is not supported."""
    grade = _METRICS.get(_ALIASES.get(metric_name, metric_name))
    if grade is None or len(id_columns) != 1 or not target_columns:
        return None
    id_column, targets = id_columns[0], list(target_columns)
    return CompetitionSpec(
        id=competition_id,
        lower_is_better=_LOWER_IS_BETTER[_ALIASES.get(metric_name, metric_name)],
        grade=lambda submission, answers: grade(submission, answers, id_column, targets),
    )
