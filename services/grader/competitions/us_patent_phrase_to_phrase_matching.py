"""US patent phrase matching: Pearson correlation of score; rows paired by id."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.competitions.checks import align_on_ids, require_columns
from services.grader.metrics.correlation import pearson


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, ["id", "score"])
    sub, ans = align_on_ids(submission, answers, "id")
    if not pd.api.types.is_numeric_dtype(sub["score"]):  # NaN passes: it gives a NaN score
        raise InvalidSubmission("Submission column 'score' must be numeric.")
    return pearson(ans["score"].to_numpy(), sub["score"].to_numpy())


SPEC = CompetitionSpec(id="us-patent-phrase-to-phrase-matching", lower_is_better=False, grade=grade)
