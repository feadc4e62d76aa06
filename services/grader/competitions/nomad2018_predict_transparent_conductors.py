"""NOMAD2018 transparent conductors: mean of the RMSLE of the two targets; rows paired by id
(MLE-bench pairs them by position; see docs/grading.md)."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.competitions.checks import align_on_ids, finite_scores, require_columns
from services.grader.metrics.regression import rmsle

TARGETS = ["formation_energy_ev_natom", "bandgap_energy_ev"]


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, [*TARGETS, "id"])
    sub, ans = align_on_ids(submission, answers, "id")
    predicted = finite_scores(sub, TARGETS)
    if (predicted <= -1).any():
        raise InvalidSubmission(
            f"Submission columns {TARGETS} must be greater than -1 (RMSLE takes log(1 + value))."
        )
    errors = [rmsle(ans[t].to_numpy(), predicted[:, i]) for i, t in enumerate(TARGETS)]
    return (errors[0] + errors[1]) / 2


SPEC = CompetitionSpec(
    id="nomad2018-predict-transparent-conductors", lower_is_better=True, grade=grade
)
