"""Herbarium 2021: macro F1 of the predicted category (Predicted); rows paired by Id."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import macro_f1_by_id


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    return macro_f1_by_id(submission, answers, "Id", "Predicted")


SPEC = CompetitionSpec(
    id="herbarium-2021-fgvc8", lower_is_better=False, grade=grade, version=2, float64_score=True
)
