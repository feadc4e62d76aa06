"""Vesuvius ink detection: F0.5 of the ink pixels per fragment, averaged over fragments.

Answers: Id, Predicted (RLE numbered along rows, unlike most Kaggle masks), width, height. The
score only counts pixels, so the runs are compared directly in their own numbering.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from services.grader.competitions.base import CompetitionSpec
from services.grader.competitions.checks import (
    align_on_ids,
    require_exact_columns,
    require_same_length,
    rle_runs_per_row,
)
from services.grader.metrics.masks import (
    fbeta_from_counts,
    rle_runs,
    runs_intersection,
    runs_length,
)


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_same_length(submission, answers)
    require_exact_columns(submission, ["Id", "Predicted"])
    sub, ans = align_on_ids(submission, answers, "Id")
    sizes = [int(w) * int(h) for w, h in zip(ans["width"], ans["height"], strict=True)]
    predicted = rle_runs_per_row(sub["Id"], sub["Predicted"], sizes)
    truth = [rle_runs(r, n) for r, n in zip(ans["Predicted"], sizes, strict=True)]
    return float(np.mean([_f05(p, t) for p, t in zip(predicted, truth, strict=True)]))


def _f05(predicted, truth) -> float:
    tp = runs_intersection(predicted, truth)
    fp, fn = runs_length(*predicted) - tp, runs_length(*truth) - tp
    return fbeta_from_counts(tp, fp, fn, beta=0.5)


SPEC = CompetitionSpec(
    id="vesuvius-challenge-ink-detection",
    lower_is_better=False,
    grade=grade,
    version=2,
    float64_score=True,
)
