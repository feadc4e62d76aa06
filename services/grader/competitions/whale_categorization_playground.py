"""Humpback Whale Identification (playground): MAP@5 of predicted whale ids per image
(higher is better). Answers: `Image`, `Id` (a whale id or "new_whale")."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec, Score
from services.grader.competitions.checks import align_on_ids, require_exact_columns
from services.grader.metrics.ranking import mean_average_precision_at_k


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> Score:
    require_exact_columns(submission, ["Image", "Id"])
    sub, ans = align_on_ids(submission, answers, "Image")
    return mean_average_precision_at_k(ans["Id"].astype(str), sub["Id"].astype(str), k=5)


SPEC = CompetitionSpec(id="whale-categorization-playground", lower_is_better=False, grade=grade)
