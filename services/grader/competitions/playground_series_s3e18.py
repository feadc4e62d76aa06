"""Mean of the binary ROC AUC of `EC1` and `EC2`, rows matched on `id`.

The answers also hold the features and EC3-EC6, which are not scored. Scores need only be
finite numbers; extra submission columns are ignored.
"""

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import (
    align_on_ids,
    finite_scores,
    require_columns,
    require_same_length,
)
from services.grader.metrics.auc import mean_column_roc_auc

LABELS = ["EC1", "EC2"]


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, ["id", *LABELS])
    require_same_length(submission, answers)
    sub, ans = align_on_ids(submission, answers, "id")
    return mean_column_roc_auc(ans[LABELS].to_numpy(), finite_scores(sub, LABELS))


SPEC = CompetitionSpec(
    id="playground-series-s3e18", lower_is_better=False, grade=grade, version=2, float64_score=True
)
