"""CHAMPS scalar coupling: mean over coupling types of log(MAE); rows paired by id."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import (
    finite_scores,
    require_columns,
    submission_in_answer_order,
)
from services.grader.metrics.regression import mean_log_mae_by_group

TARGET = "scalar_coupling_constant"


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, ["id", TARGET])
    sub = submission_in_answer_order(submission, answers, "id")
    return mean_log_mae_by_group(
        answers[TARGET].to_numpy(), finite_scores(sub, [TARGET])[:, 0], answers["type"].to_numpy()
    )


SPEC = CompetitionSpec(id="champs-scalar-coupling", lower_is_better=True, grade=grade)
