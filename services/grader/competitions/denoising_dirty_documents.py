"""Denoising Dirty Documents: RMSE of pixel intensities, rows paired by pixel id."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import (
    finite_scores,
    require_columns,
    submission_in_answer_order,
)
from services.grader.metrics.regression import rmse


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, ["id", "value"])
    predicted = finite_scores(submission, ["value"])[:, 0]
    # Paired by hashing ~6M pixel ids rather than sorting them (see docs/grading.md).
    sub = submission_in_answer_order(submission.assign(value=predicted), answers, "id")
    return rmse(answers["value"].to_numpy(dtype=float), sub["value"].to_numpy())


SPEC = CompetitionSpec(
    id="denoising-dirty-documents", lower_is_better=True, grade=grade, version=2, float64_score=True
)
