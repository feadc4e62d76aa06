"""LMSYS Chatbot Arena: log loss of the three-way preference, rows paired on `id`.

Answers are the held-out training rows; only `id` and the one-hot `winner_model_a`,
`winner_model_b`, `winner_tie` columns are used. Submission rows must hold probabilities in
[0, 1] summing to 1 after rounding to 6 decimals; extra columns are ignored.
"""

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import (
    one_hot_probability_log_loss,
    require_columns,
    require_same_length,
)

CLASSES = ["winner_model_a", "winner_model_b", "winner_tie"]


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, ["id", *CLASSES])
    require_same_length(submission, answers)
    return one_hot_probability_log_loss(submission, answers[["id", *CLASSES]], CLASSES, decimals=6)


SPEC = CompetitionSpec(id="lmsys-chatbot-arena", lower_is_better=True, grade=grade)
