"""Plant seedlings: micro F1 (equal to accuracy) of the species label; rows paired by file."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import align_on_ids, rejected_by_metric, require_columns
from services.grader.metrics.fscore import micro_f1


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, ["file", "species"])
    sub, ans = align_on_ids(submission, answers, "file")
    # An empty cell is scored as a wrong label (scikit-learn treats NaN as one more class).
    with rejected_by_metric("Submission column 'species' must hold species names (text)."):
        return micro_f1(ans["species"].tolist(), sub["species"].tolist())


SPEC = CompetitionSpec(
    id="plant-seedlings-classification",
    lower_is_better=False,
    grade=grade,
    version=2,
    float64_score=True,
)
