"""APTOS 2019 blindness detection: quadratic weighted kappa of diagnosis; paired by id_code."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.competitions.checks import align_on_ids, integer_classes, require_columns
from services.grader.metrics.correlation import quadratic_weighted_kappa


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    return kappa_by_id(submission, answers, "id_code", "diagnosis")


def kappa_by_id(
    submission: pd.DataFrame, answers: pd.DataFrame, id_column: str, target_column: str
) -> float:
    """Quadratic weighted kappa of whole-number grades, rows paired by id."""
    require_columns(submission, [id_column, target_column])
    if submission.empty:
        raise InvalidSubmission("Submission has no rows.")
    sub, ans = align_on_ids(submission, answers, id_column)
    predicted = integer_classes(sub, target_column)
    return quadratic_weighted_kappa(ans[target_column].to_numpy(), predicted)


SPEC = CompetitionSpec(
    id="aptos2019-blindness-detection",
    lower_is_better=False,
    grade=grade,
    version=2,
    float64_score=True,
)
