"""HuBMAP kidney: mean Dice over images (1.0 where both masks are empty).

Answers: id, encoding (RLE), width_pixels, height_pixels. Dice is computed on the runs, so the
gigapixel slides are never decoded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import align_on_ids, require_columns, rle_runs_per_row
from services.grader.metrics.masks import dice, rle_runs, runs_intersection, runs_length


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, ["id", "predicted"])
    sub, ans = align_on_ids(submission, answers, "id")
    sizes = (ans["height_pixels"] * ans["width_pixels"]).tolist()
    predicted = rle_runs_per_row(sub["id"], sub["predicted"].fillna(""), sizes)
    truth = [rle_runs(rle, n) for rle, n in zip(ans["encoding"], sizes, strict=True)]
    return float(np.mean([_dice(p, t) for p, t in zip(predicted, truth, strict=True)]))


def _dice(predicted, truth) -> float:
    overlap = runs_intersection(predicted, truth)
    return dice(overlap, runs_length(*predicted), runs_length(*truth), both_empty=1.0)


SPEC = CompetitionSpec(
    id="hubmap-kidney-segmentation",
    lower_is_better=False,
    grade=grade,
    version=2,
    float64_score=True,
)
