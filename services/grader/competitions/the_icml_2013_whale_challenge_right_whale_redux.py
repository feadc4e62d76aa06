"""Binary ROC AUC of `probability`, rows matched on `clip`.

`probability` is the probability that the clip holds a right whale call.
"""

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import roc_auc_inputs
from services.grader.metrics.auc import mean_column_roc_auc


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    # With a single label column the column mean is the plain ROC AUC.
    return mean_column_roc_auc(*roc_auc_inputs(submission, answers, "clip", ["probability"]))


SPEC = CompetitionSpec(
    id="the-icml-2013-whale-challenge-right-whale-redux",
    lower_is_better=False,
    grade=grade,
    version=2,
    float64_score=True,
)
