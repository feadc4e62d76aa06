"""Herbarium 2020: macro F1 of the predicted category; rows paired by Id."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import align_on_ids, require_columns, truncated_integers
from services.grader.metrics.fscore import macro_f1


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    return macro_f1_by_id(submission, answers, "Id", "Predicted")


def macro_f1_by_id(
    submission: pd.DataFrame, answers: pd.DataFrame, id_column: str, target_column: str
) -> float:
    """Macro F1 of integer category ids; values convert with int(), so 3.7 counts as 3."""
    require_columns(submission, [id_column, target_column])
    sub, ans = align_on_ids(submission, answers, id_column)
    return macro_f1(truncated_integers(ans, target_column), truncated_integers(sub, target_column))


SPEC = CompetitionSpec(
    id="herbarium-2020-fgvc7", lower_is_better=False, grade=grade, version=2, float64_score=True
)
