"""Binary ROC AUC of `MGMT_value`, rows matched on `BraTS21ID`.

`MGMT_value` is the probability that the MGMT promoter is methylated.
"""

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import roc_auc_inputs
from services.grader.metrics.auc import mean_column_roc_auc


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    # With a single label column the column mean is the plain ROC AUC.
    return mean_column_roc_auc(*roc_auc_inputs(submission, answers, "BraTS21ID", ["MGMT_value"]))


SPEC = CompetitionSpec(
    id="rsna-miccai-brain-tumor-radiogenomic-classification",
    lower_is_better=False,
    grade=grade,
    version=2,
    float64_score=True,
)
