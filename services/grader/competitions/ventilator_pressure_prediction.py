"""Ventilator pressure: MAE of pressure over the inspiratory rows (u_out == 0); paired by id."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import align_on_ids, finite_scores, require_columns
from services.grader.metrics.regression import mae


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, ["id", "pressure"])
    sub, ans = align_on_ids(submission, answers, "id")
    scored = (ans["u_out"] == 0).to_numpy()
    # Only scored rows must be numeric: the expiratory phase is dropped unread, as in MLE-bench.
    predicted = finite_scores(sub.loc[scored], ["pressure"])[:, 0]
    return mae(ans.loc[scored, "pressure"].to_numpy(), predicted)


SPEC = CompetitionSpec(
    id="ventilator-pressure-prediction",
    lower_is_better=True,
    grade=grade,
    version=2,
    float64_score=True,
)
