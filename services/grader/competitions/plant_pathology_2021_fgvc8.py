"""Plant Pathology 2021: micro F1 over the space-separated labels of each row; rows paired by
image."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import label_set_f1_by_id


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    return label_set_f1_by_id(submission, answers, "image", "labels")


SPEC = CompetitionSpec(
    id="plant-pathology-2021-fgvc8",
    lower_is_better=False,
    grade=grade,
    version=2,
    float64_score=True,
)
