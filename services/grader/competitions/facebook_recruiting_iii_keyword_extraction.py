"""Facebook Recruiting III keyword extraction: micro F1 over the space-separated Tags of each
row; rows paired by Id."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import label_set_f1_by_id


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    return label_set_f1_by_id(submission, answers, "Id", "Tags")


SPEC = CompetitionSpec(
    id="facebook-recruiting-iii-keyword-extraction",
    lower_is_better=False,
    grade=grade,
    version=2,
    float64_score=True,
)
