"""Binary ROC AUC of `Probability`, rows matched on `Id`.

`Probability` is the probability that a species is heard in a recording; each row's
`Id` is rec_id * 100 + species index.
"""

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import roc_auc_inputs
from services.grader.metrics.auc import mean_column_roc_auc


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    # With a single label column the column mean is the plain ROC AUC.
    return mean_column_roc_auc(*roc_auc_inputs(submission, answers, "Id", ["Probability"]))


SPEC = CompetitionSpec(
    id="mlsp-2013-birds", lower_is_better=False, grade=grade, version=2, float64_score=True
)
