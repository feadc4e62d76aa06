"""NFL player contact detection: Matthews correlation of contact; rows paired by contact_id."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import align_on_ids, integer_classes, require_columns
from services.grader.metrics.correlation import mcc


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, ["contact_id", "contact"])
    sub, ans = align_on_ids(submission, answers, "contact_id")
    return mcc(ans["contact"].to_numpy(), integer_classes(sub, "contact"))


SPEC = CompetitionSpec(
    id="nfl-player-contact-detection",
    lower_is_better=False,
    grade=grade,
    version=2,
    float64_score=True,
)
