"""iMet 2020: micro F1 over the space-separated attribute_ids of each image; rows paired by id."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import label_set_f1_by_id


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    return label_set_f1_by_id(submission, answers, "id", "attribute_ids")


SPEC = CompetitionSpec(
    id="imet-2020-fgvc7", lower_is_better=False, grade=grade, version=2, float64_score=True
)
