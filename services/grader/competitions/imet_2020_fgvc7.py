"""iMet 2020: micro F1 over the space-separated attribute_ids of each image; rows paired by id."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import align_on_ids, label_sets_text, require_columns
from services.grader.metrics.fscore import micro_f1_of_label_sets


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    return label_set_f1_by_id(submission, answers, "id", "attribute_ids")


def label_set_f1_by_id(
    submission: pd.DataFrame, answers: pd.DataFrame, id_column: str, labels_column: str
) -> float:
    """Micro F1 of space-separated label sets; an empty cell predicts no label."""
    require_columns(submission, [id_column, labels_column])
    sub, ans = align_on_ids(submission, answers, id_column)
    return micro_f1_of_label_sets(
        ans[labels_column].fillna("").astype(str), label_sets_text(sub, labels_column)
    )


SPEC = CompetitionSpec(
    id="imet-2020-fgvc7", lower_is_better=False, grade=grade, version=2, float64_score=True
)
