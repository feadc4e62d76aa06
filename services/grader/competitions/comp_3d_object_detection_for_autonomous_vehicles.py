"""Lyft 3D object detection: per-sample mAP over IoU thresholds 0.5..0.95, averaged.

Answers: Id (sample token), PredictionString ("1.0 x y z width length height yaw class"
repeated, the 1.0 being a placeholder confidence). Per sample, each class present in its
ground truth gets the Lyft devkit's AP (0 when not predicted); predictions of other classes
are ignored, unchecked. The score is the mean over samples and thresholds of the class mean.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.competitions.checks import align_on_ids, require_columns, require_same_length
from services.grader.metrics.boxes3d import (
    Boxes,
    box_problems,
    class_average_precisions,
    iou_matrix,
)

_THRESHOLDS = np.array([0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95])
_TOKENS_PER_BOX = 9


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_same_length(submission, answers)
    require_columns(submission, ["Id", "PredictionString"])
    sub, ans = align_on_ids(submission, answers, "Id")
    texts = sub["PredictionString"].fillna("")
    predicted = [_parse(i, text) for i, text in zip(sub["Id"], texts, strict=True)]
    truths = [_parse(i, text) for i, text in zip(ans["Id"], ans["PredictionString"], strict=True)]
    maps = [
        _sample_maps(sample_id, p, t)
        for sample_id, p, t in zip(sub["Id"], predicted, truths, strict=True)
    ]
    return float(np.mean(np.concatenate(maps)))


def _sample_maps(sample_id, predicted: Boxes, truth: Boxes) -> np.ndarray:
    """The class-mean AP of one sample at each threshold (NaN for a sample without truths)."""
    classes = sorted(set(truth.names.tolist()))
    if not classes:
        return np.full(len(_THRESHOLDS), np.nan)
    predicted = predicted.subset(np.isin(predicted.names, classes))
    problems = box_problems(predicted.params)
    if problems.any():
        bad = np.flatnonzero(problems)[0]
        raise InvalidSubmission(
            f"Submission row Id={sample_id!r}: box {bad + 1} of class "
            f"{predicted.names[bad]!r} is invalid: {problems[bad]}."
        )
    aps = np.zeros((len(classes), len(_THRESHOLDS)))
    for c, name in enumerate(classes):
        mine, theirs = predicted.names == name, truth.names == name
        if mine.any():
            ious = iou_matrix(predicted.params[mine], truth.params[theirs])
            scores = predicted.scores[mine].tolist()
            aps[c] = class_average_precisions(ious, scores, int(theirs.sum()), _THRESHOLDS)
    return aps.mean(axis=0)


def _parse(sample_id, text) -> Boxes:
    if not isinstance(text, str):
        raise InvalidSubmission(
            f"Submission row Id={sample_id!r}: PredictionString must be text, got {text!r}."
        )
    if text.strip() == "":
        return Boxes(np.zeros((0, 7)), np.zeros(0, dtype=object), np.zeros(0))
    tokens = text.split(" ")
    if len(tokens) % _TOKENS_PER_BOX:
        raise InvalidSubmission(
            f"Submission row Id={sample_id!r}: PredictionString must hold groups of "
            f"{_TOKENS_PER_BOX} single-space separated values (confidence x y z width length "
            f"height yaw class), got {len(tokens)} values."
        )
    groups = np.array(tokens, dtype=object).reshape(-1, _TOKENS_PER_BOX)
    try:
        numbers = np.array([[float(v) for v in row] for row in groups[:, :8]], dtype=float)
    except ValueError as exc:
        raise InvalidSubmission(
            f"Submission row Id={sample_id!r}: PredictionString has a non-numeric value ({exc})."
        ) from None
    return Boxes(numbers[:, 1:8], groups[:, 8], numbers[:, 0])


SPEC = CompetitionSpec(
    id="3d-object-detection-for-autonomous-vehicles",
    lower_is_better=False,
    grade=grade,
    version=2,
    float64_score=True,
)
