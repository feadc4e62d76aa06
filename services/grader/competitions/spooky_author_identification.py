"""Spooky Author Identification: multi-class log loss over EAP/HPL/MWS, rows paired on `id`.

Answers are one-hot (`id`, `EAP`, `HPL`, `MWS`). As in MLE-bench the submission must have
exactly four columns, `id` first: the probability checks apply to columns two to four by
position (probabilities in [0, 1], rows summing to 1 within 1e-6).
"""

import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.competitions.checks import (
    one_hot_log_loss_inputs,
    require_probabilities,
    require_rows_sum_to_one,
    require_same_length,
)
from services.grader.metrics.classification import log_loss


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_same_length(submission, answers)
    if submission.shape[1] != answers.shape[1]:
        raise InvalidSubmission(
            f"Submission has {submission.shape[1]} columns {list(submission.columns)}, but "
            f"needs exactly {answers.shape[1]}: {list(answers.columns)}, with the id first."
        )
    probabilities = list(submission.columns[1:])
    require_probabilities(submission, probabilities)
    require_rows_sum_to_one(submission, probabilities)
    return log_loss(*one_hot_log_loss_inputs(submission, answers, "id"))


SPEC = CompetitionSpec(id="spooky-author-identification", grade=grade)
