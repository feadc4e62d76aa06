"""F1 of labelled points matched to labelled boxes (the Kuzushiji character-recognition metric).

A predicted point is a true positive when it lies strictly inside a true box of the same label
on the same page. True boxes are taken in order; each claims the first still-unused prediction
that fits it. Unmatched boxes are false negatives, unused predictions false positives, and the
score is the F1 of the counts summed over all pages.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def match_counts(boxes: pd.DataFrame, points: pd.DataFrame) -> tuple[int, int, int]:
    """(tp, fp, fn) of all pages.

    `boxes` has columns page, label, xmin, xmax, ymin, ymax; `points` has page, label, x, y.
    Within a page, row order is the order of boxes and of predictions.
    """
    boxes = boxes.assign(box=np.arange(len(boxes)))
    points = points.assign(point=np.arange(len(points)))
    pairs = boxes.merge(points, on=["page", "label"])
    inside = (
        (pairs["xmin"] < pairs["x"])
        & (pairs["xmax"] > pairs["x"])
        & (pairs["ymin"] < pairs["y"])
        & (pairs["ymax"] > pairs["y"])
    )
    candidates = pairs.loc[inside, ["box", "point"]].sort_values(["box", "point"])
    # The greedy claim is sequential, but only boxes with a fitting prediction need visiting.
    claimed: set[int] = set()
    matched_box = -1
    for box, point in candidates.itertuples(index=False, name=None):
        if box != matched_box and point not in claimed:
            claimed.add(point)
            matched_box = box
    tp = len(claimed)
    return tp, len(points) - tp, len(boxes) - tp


def f1_from_counts(tp: int, fp: int, fn: int) -> float:
    """F1 via precision and recall (0 when either is 0 or undefined)."""
    if tp + fp == 0 or tp + fn == 0:
        return 0.0
    precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    if precision > 0 and recall > 0:
        return (2 * precision * recall) / (precision + recall)
    return 0.0
