"""Spooky Author Identification: multi-class log loss over EAP/HPL/MWS, rows paired on `id`.

Answers are one-hot (`id`, `EAP`, `HPL`, `MWS`). As in MLE-bench the submission must have
exactly four columns, `id` first: the probability checks apply to columns two to four by
position (probabilities in [0, 1], rows summing to 1 within 1e-6).
"""

import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.competitions.checks import one_hot_probability_log_loss, require_same_length


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_same_length(submission, answers)
    if submission.shape[1] != answers.shape[1]:
        raise InvalidSubmission(
            f"Submission has {submission.shape[1]} columns {list(submission.columns)}, but "
            f"needs exactly {answers.shape[1]}: {list(answers.columns)}, with the id first."
        )
    # By position, as MLE-bench checks them: every column after the id.
    return one_hot_probability_log_loss(submission, answers, list(submission.columns[1:]))


SPEC = CompetitionSpec(id="spooky-author-identification", lower_is_better=True, grade=grade)
