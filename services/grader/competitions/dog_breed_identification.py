"""Dog Breed Identification: multi-class log loss over 120 breeds, rows paired on `id`.

Answers are one-hot: `id` plus one 0/1 column per breed. The submission needs every breed column
holding probabilities in [0, 1] whose rows sum to 1 (within 1e-6); extra columns are ignored.
"""

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import (
    one_hot_probability_log_loss,
    require_columns,
    require_same_length,
)


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    breeds = [c for c in answers.columns if c != "id"]
    require_columns(submission, ["id", *breeds])
    require_same_length(submission, answers)
    return one_hot_probability_log_loss(submission, answers, breeds)


SPEC = CompetitionSpec(id="dog-breed-identification", lower_is_better=True, grade=grade)
