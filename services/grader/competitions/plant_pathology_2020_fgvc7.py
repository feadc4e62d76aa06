"""Mean over the four label columns of the binary ROC AUC, rows matched on `image_id`.

The answers are one-hot; the submission must have exactly the answers' columns (MLE-bench
rejects extra ones). Scores need not be probabilities, only finite numbers.
"""

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import (
    align_on_ids,
    finite_scores,
    require_exact_columns,
    require_same_length,
)
from services.grader.metrics.auc import mean_column_roc_auc

LABELS = ["healthy", "multiple_diseases", "rust", "scab"]


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_same_length(submission, answers)
    require_exact_columns(submission, ["image_id", *LABELS])
    sub, ans = align_on_ids(submission, answers, "image_id")
    return mean_column_roc_auc(ans[LABELS].to_numpy(), finite_scores(sub, LABELS))


SPEC = CompetitionSpec(
    id="plant-pathology-2020-fgvc7",
    lower_is_better=False,
    grade=grade,
    version=2,
    float64_score=True,
)
