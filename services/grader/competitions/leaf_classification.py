"""Leaf Classification: multi-class log loss over 99 species, rows paired on `id`.

Answers are one-hot: `id` plus one 0/1 column per species. The submission must have exactly
those columns, holding probabilities in [0, 1] whose rows sum to 1 (within 1e-6).
"""

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import (
    one_hot_probability_log_loss,
    require_exact_columns,
    require_same_length,
)


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    species = [c for c in answers.columns if c != "id"]
    require_exact_columns(submission, ["id", *species])
    require_same_length(submission, answers)
    return one_hot_probability_log_loss(submission, answers, species)


SPEC = CompetitionSpec(id="leaf-classification", lower_is_better=True, grade=grade)
