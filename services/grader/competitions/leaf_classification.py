"""Leaf Classification: multi-class log loss over 99 species, rows paired on `id`.

Answers are one-hot: `id` plus one 0/1 column per species. The submission must have exactly
those columns, holding probabilities in [0, 1] whose rows sum to 1 (within 1e-6).
"""

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import (
    one_hot_log_loss_inputs,
    require_exact_columns,
    require_probabilities,
    require_rows_sum_to_one,
    require_same_length,
)
from services.grader.metrics.classification import log_loss


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    species = [c for c in answers.columns if c != "id"]
    require_exact_columns(submission, ["id", *species])
    require_same_length(submission, answers)
    require_probabilities(submission, species)
    require_rows_sum_to_one(submission, species)
    return log_loss(*one_hot_log_loss_inputs(submission, answers, "id"))


SPEC = CompetitionSpec(id="leaf-classification", grade=grade)
