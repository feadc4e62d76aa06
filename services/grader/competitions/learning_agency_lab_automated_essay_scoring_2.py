"""Automated essay scoring 2.0: quadratic weighted kappa of score; rows paired by essay_id."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import kappa_by_id


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    return kappa_by_id(submission, answers, "essay_id", "score")


SPEC = CompetitionSpec(
    id="learning-agency-lab-automated-essay-scoring-2",
    lower_is_better=False,
    grade=grade,
    version=2,
    float64_score=True,
)
