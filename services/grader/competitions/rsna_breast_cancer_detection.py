"""RSNA screening mammography: probabilistic F1 of the cancer probability; rows paired by
prediction_id."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission, Score
from services.grader.competitions.checks import align_on_ids, require_columns
from services.grader.metrics.fscore import probabilistic_f1


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> Score:
    require_columns(submission, ["prediction_id", "cancer"])
    sub, ans = align_on_ids(submission, answers, "prediction_id")
    if not pd.api.types.is_numeric_dtype(sub["cancer"]):
        raise InvalidSubmission("Submission column 'cancer' must be numeric.")
    # NaN is not rejected: as in MLE-bench it makes the score 0.
    return probabilistic_f1(ans["cancer"].to_numpy(), sub["cancer"].to_numpy(dtype=float))


SPEC = CompetitionSpec(id="rsna-breast-cancer-detection", lower_is_better=False, grade=grade)
