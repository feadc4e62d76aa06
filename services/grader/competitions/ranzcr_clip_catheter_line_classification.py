"""Mean over label columns of the binary ROC AUC, rows matched on `StudyInstanceUID`.

MLE-bench scores 9 of the 11 label columns of the answers: the two left out ("CVC - Normal"
and "Swan Ganz Catheter Present") are kept out here too, so scores and medals stay comparable.
Each column is checked like a binary AUC submission (numeric probabilities in [0, 1]).
"""

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import roc_auc_inputs
from services.grader.metrics.auc import mean_column_roc_auc

SCORED_LABELS = [
    "ETT - Abnormal",
    "ETT - Borderline",
    "ETT - Normal",
    "NGT - Abnormal",
    "NGT - Borderline",
    "NGT - Incompletely Imaged",
    "NGT - Normal",
    "CVC - Abnormal",
    "CVC - Borderline",
]


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    return mean_column_roc_auc(
        *roc_auc_inputs(submission, answers, "StudyInstanceUID", SCORED_LABELS)
    )


SPEC = CompetitionSpec(
    id="ranzcr-clip-catheter-line-classification",
    lower_is_better=False,
    grade=grade,
    version=2,
    float64_score=True,
)
