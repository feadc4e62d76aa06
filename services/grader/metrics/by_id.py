"""Scores of one target column with submission rows paired to answer rows by an id column.

Shared by several competition specs: each takes the id and target column names, checks the
submission with `services/grader/competitions/checks.py` (raising InvalidSubmission) and scores
with a metric family from this package.
"""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import InvalidSubmission
from services.grader.competitions.checks import (
    align_on_ids,
    integer_classes,
    label_sets_text,
    require_columns,
    truncated_integers,
)
from services.grader.metrics.correlation import quadratic_weighted_kappa
from services.grader.metrics.fscore import macro_f1, micro_f1_of_label_sets


def kappa_by_id(
    submission: pd.DataFrame, answers: pd.DataFrame, id_column: str, target_column: str
) -> float:
    """Quadratic weighted kappa of whole-number grades, rows paired by id."""
    require_columns(submission, [id_column, target_column])
    if submission.empty:
        raise InvalidSubmission("Submission has no rows.")
    sub, ans = align_on_ids(submission, answers, id_column)
    predicted = integer_classes(sub, target_column)
    return quadratic_weighted_kappa(ans[target_column].to_numpy(), predicted)


def macro_f1_by_id(
    submission: pd.DataFrame, answers: pd.DataFrame, id_column: str, target_column: str
) -> float:
    """Macro F1 of integer category ids; values convert with int(), so 3.7 counts as 3."""
    require_columns(submission, [id_column, target_column])
    sub, ans = align_on_ids(submission, answers, id_column)
    return macro_f1(truncated_integers(ans, target_column), truncated_integers(sub, target_column))


def label_set_f1_by_id(
    submission: pd.DataFrame, answers: pd.DataFrame, id_column: str, labels_column: str
) -> float:
    """Micro F1 of space-separated label sets; an empty cell predicts no label."""
    require_columns(submission, [id_column, labels_column])
    sub, ans = align_on_ids(submission, answers, id_column)
    return micro_f1_of_label_sets(
        ans[labels_column].fillna("").astype(str), label_sets_text(sub, labels_column)
    )
