"""SIIM COVID-19: PASCAL VOC mAP at IoU > 0.5 over the six labels of study and image rows.

Answers: id ("<x>_study" / "<x>_image"), PredictionString ("label conf xmin ymin xmax ymax"
repeated). Each label is a class of its own (negative, typical, ..., none, opacity); per class,
matches give (1, conf), misses (0, conf), unmatched truths (1, 0), and images with neither
(0, 0); scikit-learn's average precision of those pairs is averaged over classes.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.competitions.checks import align_on_ids, require_columns, require_same_length
from services.grader.metrics.detection import (
    LabelledBoxes,
    mean_average_precision,
    voc_label_pairs,
)


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_same_length(submission, answers)
    require_columns(submission, ["id", "PredictionString"])
    sub, ans = align_on_ids(submission, answers, "id")
    predictions = [
        _parse(row_id, s) for row_id, s in zip(sub["id"], sub["PredictionString"], strict=True)
    ]
    truths = [
        _parse(row_id, s) for row_id, s in zip(ans["id"], ans["PredictionString"], strict=True)
    ]
    labels = sorted({label for truth in truths for label in truth.labels})
    pairs = [voc_label_pairs(predictions, truths, label, min_iou=0.5) for label in labels]
    for y_true, y_score in pairs:
        if not all(math.isfinite(s) for s in y_score):
            raise InvalidSubmission(
                "Submission has a NaN or infinite confidence in a PredictionString."
            )
        if all(y == 1 for y in y_true):
            raise InvalidSubmission("Average precision is undefined for this submission.")
    return mean_average_precision(pairs)


def _parse(row_id, text) -> LabelledBoxes:
    if not isinstance(text, str):
        raise InvalidSubmission(
            f"Submission row id={row_id!r} has no PredictionString text (got {text!r})."
        )
    tokens = text.split()
    if len(tokens) % 6:
        raise InvalidSubmission(
            f"Submission row id={row_id!r}: PredictionString must hold groups of 6 values "
            f"(label conf xmin ymin xmax ymax), got {len(tokens)} values."
        )
    try:
        numbers = [[float(t) for t in tokens[i + 1 : i + 6]] for i in range(0, len(tokens), 6)]
    except ValueError as exc:
        raise InvalidSubmission(
            f"Submission row id={row_id!r}: PredictionString has a non-numeric value ({exc})."
        ) from None
    return LabelledBoxes(
        labels=tokens[0::6],
        scores=[n[0] for n in numbers],
        boxes=np.array([n[1:] for n in numbers], dtype=float).reshape(-1, 4),
    )


SPEC = CompetitionSpec(
    id="siim-covid19-detection", lower_is_better=False, grade=grade, version=2, float64_score=True
)
