"""NYC taxi fare: RMSE of fare_amount, rows paired by key."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import align_on_ids, finite_scores, require_columns
from services.grader.metrics.regression import rmse


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, ["key", "fare_amount"])
    sub, ans = align_on_ids(submission, answers, "key")
    return rmse(ans["fare_amount"].to_numpy(), finite_scores(sub, ["fare_amount"])[:, 0])


SPEC = CompetitionSpec(
    id="new-york-city-taxi-fare-prediction",
    lower_is_better=True,
    grade=grade,
    version=2,
    float64_score=True,
)
