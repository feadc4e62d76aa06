"""Weighted ROC AUC of `Label` (higher = more likely to hide a message), rows matched on `Id`.

The part of the ROC curve with true-positive rate below 0.4 weighs twice as much as the rest
(see services.grader.metrics.auc.band_weighted_roc_auc). Scores need only be finite numbers.
"""

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import (
    align_on_ids,
    finite_scores,
    require_columns,
    require_same_length,
)
from services.grader.metrics.auc import band_weighted_roc_auc


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_same_length(submission, answers)
    require_columns(submission, ["Id", "Label"])
    sub, ans = align_on_ids(submission, answers, "Id")
    return band_weighted_roc_auc(
        ans["Label"].to_numpy(dtype=float),
        finite_scores(sub, ["Label"])[:, 0],
        tpr_bounds=(0.0, 0.4, 1.0),
        weights=(2.0, 1.0),
    )


SPEC = CompetitionSpec(
    id="alaska2-image-steganalysis",
    lower_is_better=False,
    grade=grade,
    version=2,
    float64_score=True,
)
