"""APTOS 2019 blindness detection: quadratic weighted kappa of diagnosis; paired by id_code."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import kappa_by_id


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    return kappa_by_id(submission, answers, "id_code", "diagnosis")


SPEC = CompetitionSpec(
    id="aptos2019-blindness-detection",
    lower_is_better=False,
    grade=grade,
    version=2,
    float64_score=True,
)
