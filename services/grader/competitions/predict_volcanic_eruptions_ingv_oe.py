"""INGV volcanic eruptions: MAE of time_to_eruption, rounded to a whole number; paired by
segment_id."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import (
    finite_scores,
    require_columns,
    submission_in_answer_order,
)
from services.grader.metrics.regression import mae


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, ["segment_id", "time_to_eruption"])
    sub = submission_in_answer_order(submission, answers, "segment_id")
    error = mae(
        answers["time_to_eruption"].to_numpy(), finite_scores(sub, ["time_to_eruption"])[:, 0]
    )
    return float(round(error))  # MLE-bench reports this MAE as an integer


SPEC = CompetitionSpec(id="predict-volcanic-eruptions-ingv-oe", lower_is_better=True, grade=grade)
