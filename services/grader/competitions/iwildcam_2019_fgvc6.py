"""iWildCam 2019: macro F1 of the predicted category (Category); rows paired by Id."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import macro_f1_by_id


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    return macro_f1_by_id(submission, answers, "Id", "Category")


SPEC = CompetitionSpec(
    id="iwildcam-2019-fgvc6", lower_is_better=False, grade=grade, version=2, float64_score=True
)
