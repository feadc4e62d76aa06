"""TGS Salt: mean over images of the precision averaged over IoU thresholds 0.5..0.95.

Each 101x101 mask is one object. Faithful to MLE-bench's histogram-based grader, including
its quirk for an empty prediction of a non-empty mask: the empty mask's background is then
counted as the predicted object, so its IoU is the true mask's share of the image.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import (
    align_on_ids,
    require_exact_columns,
    require_same_length,
    require_text,
    rle_runs_per_row,
)
from services.grader.metrics.masks import rle_runs, runs_intersection, runs_length

_PIXELS = 101 * 101
_THRESHOLDS = np.arange(0.5, 1.0, 0.05)


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_exact_columns(submission, ["id", "rle_mask"])
    require_same_length(submission, answers)
    submission = submission.fillna("")
    for column in ["id", "rle_mask"]:
        require_text(submission, column, allow_missing=False)
    sub, ans = align_on_ids(submission, answers.fillna(""), "id")
    predicted = rle_runs_per_row(sub["id"], sub["rle_mask"], [_PIXELS] * len(sub))
    truth = [rle_runs(rle, _PIXELS) for rle in ans["rle_mask"]]
    return float(np.mean([_image_score(p, t) for p, t in zip(predicted, truth, strict=True)]))


def _image_score(predicted, truth) -> float:
    n_true, n_pred = runs_length(*truth), runs_length(*predicted)
    if n_true == 0:
        return 1.0 if n_pred == 0 else 0.0
    if n_pred == 0:
        iou = n_true / _PIXELS
    else:
        overlap = runs_intersection(predicted, truth)
        iou = overlap / (n_true + n_pred - overlap)
    return float(np.mean(iou > _THRESHOLDS))


SPEC = CompetitionSpec(
    id="tgs-salt-identification-challenge",
    lower_is_better=False,
    grade=grade,
    version=2,
    float64_score=True,
)
