"""Google Smartphone Decimeter 2022: per phone trip, the mean of the 50th and 95th percentile
haversine error in metres, averaged over trips; rows paired by (tripId, UnixTimeMillis)
(MLE-bench pairs them by position within each trip; see docs/grading.md)."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.competitions.checks import (
    finite_scores,
    require_columns,
    submission_in_answer_order,
)
from services.grader.metrics.regression import haversine_m, mean_of_group_p50_p95

POSITION = ["LatitudeDegrees", "LongitudeDegrees"]
EPOCH = "tripId@UnixTimeMillis"


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, ["tripId", "UnixTimeMillis", *POSITION])
    finite_scores(submission, ["UnixTimeMillis"])
    for column in POSITION:  # NaN is allowed: it yields a NaN score, as in MLE-bench
        if not pd.api.types.is_numeric_dtype(submission[column]):
            raise InvalidSubmission(f"Submission column {column!r} must be numeric.")
    sub = submission_in_answer_order(_with_epoch(submission), _with_epoch(answers), EPOCH)
    distances = haversine_m(
        sub["LatitudeDegrees"].to_numpy(dtype=float),
        sub["LongitudeDegrees"].to_numpy(dtype=float),
        answers["LatitudeDegrees"].to_numpy(dtype=float),
        answers["LongitudeDegrees"].to_numpy(dtype=float),
    )
    return mean_of_group_p50_p95(distances, answers["tripId"].to_numpy())


def _with_epoch(frame: pd.DataFrame) -> pd.DataFrame:
    """Add one text key per row, so that trip and timestamp are matched together."""
    millis = frame["UnixTimeMillis"].astype(float).astype(str)  # 1.0 and 1 give the same key
    return frame.assign(**{EPOCH: frame["tripId"].astype(str) + "@" + millis})


SPEC = CompetitionSpec(id="smartphone-decimeter-2022", lower_is_better=True, grade=grade)
