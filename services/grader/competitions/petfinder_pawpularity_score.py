"""PetFinder Pawpularity: RMSE of Pawpularity, which must lie in [1, 100]; rows paired by Id."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.competitions.checks import align_on_ids, finite_scores, require_columns
from services.grader.metrics.regression import rmse


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, ["Id", "Pawpularity"])
    predicted = submission["Pawpularity"]
    if not pd.api.types.is_numeric_dtype(predicted):
        raise InvalidSubmission("Submission column 'Pawpularity' must be numeric.")
    finite_scores(submission, ["Pawpularity"])  # NaN is out of range too; say so plainly
    outside = predicted[~predicted.between(1, 100)]
    if len(outside):
        raise InvalidSubmission(
            f"Submission column 'Pawpularity' must lie in [1, 100], but {len(outside)} value(s) "
            f"do not, e.g. {outside.head(5).tolist()}."
        )
    # Only the scored column moves: taking the 32-character text ids too was most of the cost.
    sub, ans = align_on_ids(submission, answers, "Id", ["Pawpularity"])
    return rmse(ans["Pawpularity"].to_numpy(), sub["Pawpularity"].to_numpy(dtype=float))


SPEC = CompetitionSpec(
    id="petfinder-pawpularity-score",
    lower_is_better=True,
    grade=grade,
    version=2,
    float64_score=True,
    arrow_text_columns=("Id",),
)
