"""Contrails: global Dice over all pixels of all test images.

Answers: record_id, encoded_pixels (RLE, "-" for an empty mask), height, width. An empty
submission cell is not an empty mask (MLE-bench rejects it): empty masks are written "-".
"""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.competitions.checks import align_on_ids, require_columns, rle_runs_per_row
from services.grader.metrics.masks import dice, rle_runs, runs_intersection, runs_length


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, ["record_id", "encoded_pixels"])
    sub, ans = align_on_ids(submission, answers, "record_id")
    if sub["encoded_pixels"].isna().any():
        example = sub.loc[sub["encoded_pixels"].isna(), "record_id"].iloc[0]
        raise InvalidSubmission(
            f"Submission column 'encoded_pixels' is empty for record_id={example!r}; write '-' "
            "for an empty mask."
        )
    sizes = (ans["height"].astype(int) * ans["width"].astype(int)).tolist()
    predicted = rle_runs_per_row(sub["record_id"], sub["encoded_pixels"].replace("-", ""), sizes)
    truth = [
        rle_runs(r, n) for r, n in zip(ans["encoded_pixels"].replace("-", ""), sizes, strict=True)
    ]
    overlap = sum(runs_intersection(p, t) for p, t in zip(predicted, truth, strict=True))
    n_pred = sum(runs_length(*p) for p in predicted)
    n_true = sum(runs_length(*t) for t in truth)
    return dice(overlap, n_pred, n_true, both_empty=float("nan"))


SPEC = CompetitionSpec(
    id="google-research-identify-contrails-reduce-global-warming",
    lower_is_better=False,
    grade=grade,
    version=2,
    float64_score=True,
)
