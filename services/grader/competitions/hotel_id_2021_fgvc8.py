"""Hotel-ID 2021: MAP@5 of predicted hotel ids per image (higher is better).
Answers: `image`, `chain`, `hotel_id`, `timestamp`, one true hotel per image."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec, Score
from services.grader.competitions.checks import align_on_ids, require_columns
from services.grader.metrics.ranking import mean_average_precision_at_k


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> Score:
    require_columns(submission, ["image", "hotel_id"])
    sub, ans = align_on_ids(submission, answers, "image")
    return mean_average_precision_at_k(
        ans["hotel_id"].astype(str), sub["hotel_id"].astype(str), k=5
    )


SPEC = CompetitionSpec(id="hotel-id-2021-fgvc8", lower_is_better=False, grade=grade)
