"""Jigsaw Unintended Bias in Toxicity Classification: overall AUC combined with power means
(p = -5) of per-identity subgroup, BPSN and BNSP AUCs, each weighted 0.25 (higher is better).
Answers: Jigsaw's expanded private test set, with `id`, fractional `toxicity` and one
fractional column per identity. Predictions, labels and identities are all cut at 0.5 before
any AUC is taken, as MLE-bench does (so only the side of 0.5 a prediction falls on matters).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission, Score
from services.grader.competitions.checks import align_on_ids, require_columns
from services.grader.metrics.subgroup_auc import bias_weighted_auc

IDENTITIES = [
    "male",
    "female",
    "homosexual_gay_or_lesbian",
    "christian",
    "jewish",
    "muslim",
    "black",
    "white",
    "psychiatric_or_mental_illness",
]


def _at_least_half(values: pd.Series) -> np.ndarray:
    """1 where the value is >= 0.5, else 0 (NaN included)."""
    return (values.to_numpy() >= 0.5).astype(int)


def _prediction_column(submission: pd.DataFrame) -> str:
    # MLE-bench also accepts the answers' own column name, so an answers file grades as is.
    present = [c for c in ("prediction", "toxicity") if c in submission.columns]
    if len(present) != 1:
        raise InvalidSubmission(
            "Submission must have exactly one prediction column, 'prediction' (or 'toxicity'); "
            f"found {present or 'neither'}."
        )
    return present[0]


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> Score:
    require_columns(submission, ["id"])
    column = _prediction_column(submission)
    sub, ans = align_on_ids(submission, answers, "id")
    if not pd.api.types.is_numeric_dtype(sub[column]):  # numbers or booleans compare with 0.5
        raise InvalidSubmission(
            f"Submission column {column!r} must be numeric, but has type {sub[column].dtype}."
        )
    return bias_weighted_auc(
        _at_least_half(ans["toxicity"]),
        _at_least_half(sub[column]),
        [_at_least_half(ans[identity]).astype(bool) for identity in IDENTITIES],
    )


SPEC = CompetitionSpec(
    id="jigsaw-unintended-bias-in-toxicity-classification",
    lower_is_better=False,
    grade=grade,
    version=2,
)
