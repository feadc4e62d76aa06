"""H&M Personalized Fashion Recommendations: MAP@12 of predicted article ids (higher is
better). Answers: `customer_id`, `prediction` (space-separated articles bought), only for
customers who bought something; submissions list every customer, and the rest are ignored."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission, Score
from services.grader.competitions.checks import require_exact_columns, require_unique
from services.grader.metrics.ranking import mean_average_precision_at_k

ID = "customer_id"


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> Score:
    require_exact_columns(submission, [ID, "prediction"])
    # MLE-bench pairs rows by position after filtering, so a repeated id shifts every later
    # row; we reject repeats (anywhere, so the message reveals nothing about who is graded).
    require_unique(submission, ID)
    if not answers[ID].isin(submission[ID]).all():
        raise InvalidSubmission(
            f"Submission must have a row for every {ID} in the sample submission; some are missing."
        )
    ans = answers.sort_values(ID, kind="stable", ignore_index=True)
    predictions = submission.set_index(ID)["prediction"].reindex(ans[ID])
    return mean_average_precision_at_k(ans["prediction"].astype(str), predictions.astype(str), k=12)


SPEC = CompetitionSpec(
    id="h-and-m-personalized-fashion-recommendations", lower_is_better=False, grade=grade
)
