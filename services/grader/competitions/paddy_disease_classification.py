"""Paddy Doctor: accuracy of the disease `label`, rows paired on `image_id`.

As in MLE-bench, a missing label counts as the empty string (a wrong answer), not an error.
"""

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import label_accuracy, labels_by_id


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    y_true, y_pred = labels_by_id(submission, answers, "image_id", "label")
    # A list (not an array) as MLE-bench passes it: numbers mixed with "" then become text.
    return label_accuracy(y_true, pd.Series(y_pred).fillna("").tolist(), "label")


SPEC = CompetitionSpec(id="paddy-disease-classification", lower_is_better=False, grade=grade)
