"""Mean over the six toxicity columns of the binary ROC AUC, rows matched on `id`.

Answer rows labelled -1 in every column were not used by Kaggle and are left out of the score.
The submission must have exactly `id` and the six columns (MLE-bench fails on extra ones).
Scores need only be finite numbers, in every row: checking only scored rows would tell an
agent which rows are scored, which comes from the answers.
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

LABELS = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_exact_columns(submission, ["id", *LABELS])
    require_same_length(submission, answers)
    sub, ans = align_on_ids(submission, answers, "id")
    scores = finite_scores(sub, LABELS)
    scored = (ans[LABELS].sum(axis=1) >= 0).to_numpy()
    return mean_column_roc_auc(ans.loc[scored, LABELS].to_numpy(), scores[scored])


SPEC = CompetitionSpec(
    id="jigsaw-toxic-comment-classification-challenge",
    lower_is_better=False,
    grade=grade,
    version=2,
    float64_score=True,
)
