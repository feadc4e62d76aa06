"""HMS Harmful Brain Activity Classification: mean KL divergence of six vote distributions.

Answers are held-out training rows: `eeg_id` (which repeats) and six `*_vote` counts, turned
into distributions by dividing by each row's total. Submission rows pair on `eeg_id` (repeats in
order of appearance) and hold six probabilities whose sum rounds (5 decimals) to 1. As in
Kaggle's metric, every non-id submission column must be a probability and all of them together
must sum to 1 per row, so extra columns pass only when they are all zero.
"""

import numpy as np
import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.competitions.checks import (
    align_on_ids,
    require_columns,
    require_probabilities,
    require_same_length,
)
from services.grader.metrics.classification import kl_divergence

ID = "eeg_id"
VOTES = ["seizure_vote", "lpd_vote", "gpd_vote", "lrda_vote", "grda_vote", "other_vote"]


def _sums_round_to_one(sums: np.ndarray) -> np.ndarray:
    """Python's round(s, 5) == 1 per value; only values near the rounding edge need Python."""
    distance = np.abs(sums - 1)
    ok = distance < 5e-6
    edge = np.abs(distance - 5e-6) < 1e-9
    ok[edge] = [round(s, 5) == 1 for s in sums[edge]]
    return ok


def _require_distributions(submission: pd.DataFrame) -> None:
    require_probabilities(submission, VOTES)
    sums = submission[VOTES].sum(axis=1).to_numpy(dtype=float)
    bad = ~_sums_round_to_one(sums)
    if bad.any():
        raise InvalidSubmission(
            f"Each row's {VOTES} must sum to 1 (to 5 decimals), but {int(bad.sum())} row(s) do "
            f"not, e.g. data row(s) {np.flatnonzero(bad)[:5].tolist()} (0-based)."
        )
    others = [c for c in submission.columns if c != ID]
    if not pd.api.types.is_numeric_dtype(submission[others].to_numpy().dtype):
        raise InvalidSubmission(f"Submission columns {others} must all be numeric.")
    require_probabilities(submission, others)
    if not np.allclose(submission[others].sum(axis=1), 1):
        extra = [c for c in others if c not in VOTES]
        raise InvalidSubmission(
            f"Extra column(s) {extra} count as probabilities and must be 0 in every row."
        )


def _paired_in_reference_order(
    submission: pd.DataFrame, answers: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows paired as align_on_ids pairs them, listed in MLE-bench's order.

    MLE-bench sorts by eeg_id with pandas' default (unstable) sort, which orders repeated ids
    its own way; following it makes the final mean add rows in the same order, to the last bit.
    """
    answers = answers.reset_index(drop=True)
    sub, ans = align_on_ids(submission, answers.assign(_row=np.arange(len(answers))), ID)
    rank = np.empty(len(answers), dtype=int)
    rank[answers.sort_values(ID).index.to_numpy()] = np.arange(len(answers))
    order = np.argsort(rank[ans["_row"].to_numpy()])
    return sub.iloc[order], ans.iloc[order]


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, [ID, *VOTES])
    require_same_length(submission, answers)
    _require_distributions(submission)
    submission, answers = _paired_in_reference_order(submission, answers)
    votes = answers[VOTES]
    return kl_divergence(
        votes.div(votes.sum(axis=1), axis=0).to_numpy(), submission[VOTES].to_numpy()
    )


SPEC = CompetitionSpec(
    id="hms-harmful-brain-activity-classification",
    lower_is_better=True,
    grade=grade,
    version=2,
    float64_score=True,
)
