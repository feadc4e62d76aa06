"""VinBigData chest X-ray: COCO bbox mAP at IoU 0.4 (pycocotools' COCOeval stats[0]).

Answers: one row per box, columns image_id, class_name, class_id, rad_id, x_min, y_min, x_max,
y_max ("No finding", class 14, is the box 0 0 1 1). The submission has one row per image_id
with PredictionString "class conf x_min y_min x_max y_max" repeated, single-space separated.
As in MLE-bench, corner boxes are handed to COCO as if they were (x, y, width, height), areas
are the true corner areas, and annotation ids count from 0 in file order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.competitions.checks import require_columns
from services.grader.metrics.detection import CocoAnnotations, coco_bbox_ap

_CORNERS = ["x_min", "y_min", "x_max", "y_max"]


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, ["PredictionString", "image_id"])
    image_ids = answers["image_id"].unique()
    unknown = set(submission["image_id"]) - set(image_ids)
    if unknown or len(set(submission["image_id"])) != len(image_ids):
        examples = sorted(map(repr, unknown))[:5]
        raise InvalidSubmission(
            "Submission column 'image_id' must hold every expected image_id (rows may repeat)"
            + (f"; unexpected: {', '.join(examples)}." if unknown else "; some are missing.")
        )
    position = {image_id: i for i, image_id in enumerate(image_ids)}
    truth = _truth(answers, position)
    predictions = _predictions(submission, position)
    return coco_bbox_ap(truth, predictions, len(image_ids), iou_threshold=0.4)


def _truth(answers: pd.DataFrame, position: dict) -> CocoAnnotations:
    # COCO ids follow the answers grouped by image (images in order of first appearance).
    image = answers["image_id"].map(position).to_numpy()
    ordered = answers.iloc[np.argsort(image, kind="stable")]
    x0, y0, x1, y1 = (ordered[c].to_numpy(dtype=float) for c in _CORNERS)
    return CocoAnnotations(
        image=np.sort(image, kind="stable"),
        category=ordered["class_id"].to_numpy(),
        boxes=np.column_stack([x0, y0, x1, y1]),
        area=(x1 - x0) * (y1 - y0),
        ids=np.arange(len(ordered)),
    )


def _predictions(submission: pd.DataFrame, position: dict) -> CocoAnnotations:
    rows = [
        _parse(image_id, text)
        for image_id, text in zip(
            submission["image_id"], submission["PredictionString"], strict=True
        )
    ]
    values = np.concatenate(rows) if rows else np.zeros((0, 6))
    counts = [len(r) for r in rows]
    images = np.repeat([position[i] for i in submission["image_id"]], counts)
    try:
        category = np.array([int(c) for c in values[:, 0]], dtype=np.int64)
    except (ValueError, OverflowError) as exc:
        raise InvalidSubmission(
            f"Submission has a class id that is not a number ({exc})."
        ) from None
    return CocoAnnotations(
        image=images.astype(np.int64),
        category=category,
        boxes=values[:, 2:6],
        area=(values[:, 4] - values[:, 2]) * (values[:, 5] - values[:, 3]),
        ids=np.arange(len(values)),
        scores=values[:, 1],
    )


def _parse(image_id, text) -> np.ndarray:
    if not isinstance(text, str):
        raise InvalidSubmission(
            f"Submission row image_id={image_id!r} has no PredictionString text (got {text!r})."
        )
    try:
        values = np.array([float(t) for t in text.split(" ")], dtype=float)
    except ValueError as exc:
        raise InvalidSubmission(
            f"Submission row image_id={image_id!r}: PredictionString must be numbers separated "
            f"by single spaces ({exc})."
        ) from None
    if len(values) % 6:
        raise InvalidSubmission(
            f"Submission row image_id={image_id!r}: PredictionString must hold groups of 6 "
            f"numbers (class conf x_min y_min x_max y_max), got {len(values)}."
        )
    return values.reshape(-1, 6)


SPEC = CompetitionSpec(
    id="vinbigdata-chest-xray-abnormalities-detection",
    lower_is_better=False,
    grade=grade,
    version=2,
    float64_score=True,
)
