"""IceCube neutrinos: mean angular error between true and predicted directions; paired by
event_id. The submission must have exactly the columns event_id, azimuth, zenith."""

from __future__ import annotations

import numpy as np
import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.competitions.checks import align_on_ids, finite_scores
from services.grader.metrics.regression import mean_angular_error

COLUMNS = ["event_id", "azimuth", "zenith"]


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    if set(submission.columns) != set(COLUMNS):
        raise InvalidSubmission(
            f"Submission must have exactly the columns {COLUMNS}, got {list(submission.columns)}."
        )
    for column in ("azimuth", "zenith"):
        # Numbers only: MLE-bench rejects booleans and text here, not only NaN and infinities.
        if not np.issubdtype(submission[column].dtype, np.number):
            raise InvalidSubmission(f"Submission column {column!r} must be numeric.")
    finite_scores(submission, ["azimuth", "zenith"])
    sub, ans = align_on_ids(submission, answers, "event_id")
    return mean_angular_error(
        ans["azimuth"].to_numpy(),
        ans["zenith"].to_numpy(),
        sub["azimuth"].to_numpy(dtype=float),
        sub["zenith"].to_numpy(dtype=float),
    )


SPEC = CompetitionSpec(id="icecube-neutrinos-in-deep-ice", lower_is_better=True, grade=grade)
