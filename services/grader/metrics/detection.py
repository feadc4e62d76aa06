"""Bounding-box detection metrics: PASCAL-VOC-style pairs and the COCO bbox evaluation.

Both reproduce their reference implementations' comparisons exactly, including how NaN
behaves in them, because a single flipped comparison changes which boxes match.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import average_precision_score


def _py_max(a, b):
    """Python's max(a, b) elementwise: b only where b > a (so NaN handling is Python's)."""
    return np.where(b > a, b, a)


def _py_min(a, b):
    return np.where(b < a, b, a)


def corner_box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one (xmin, ymin, xmax, ymax) box with each row of `others`; 0 for a non-positive
    union. Written with Python's max/min semantics, as in MLE-bench's SIIM grader."""
    x1, y1, x2, y2 = box
    ox1, oy1, ox2, oy2 = others.T
    width = _py_max(0.0, _py_min(x2, ox2) - _py_max(x1, ox1))
    height = _py_max(0.0, _py_min(y2, oy2) - _py_max(y1, oy1))
    inter = width * height
    union = (x2 - x1) * (y2 - y1) + (ox2 - ox1) * (oy2 - oy1) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


@dataclass
class LabelledBoxes:
    """One image's boxes: labels (str), confidences and (xmin, ymin, xmax, ymax) corners."""

    labels: list[str]
    scores: list[float]
    boxes: np.ndarray


def voc_label_pairs(
    predictions: list[LabelledBoxes], truths: list[LabelledBoxes], label: str, min_iou: float
) -> tuple[list[int], list[float]]:
    """(is_true, score) pairs for one label over all images, greedy VOC matching.

    Per image, predictions go in descending confidence; each takes the unmatched truth box of
    highest IoU above `min_iou` (TP) or none (FP). Unmatched truths add (1, 0); an image with
    neither predictions nor truths of the label adds (0, 0), so that AP stays defined.
    Each image's prediction order is re-sorted in place per call, as the reference does.
    """
    y_true: list[int] = []
    y_score: list[float] = []
    for pred, truth in zip(predictions, truths, strict=True):
        order = _sort_in_place(pred)
        gt = truth.boxes[[i for i, lab in enumerate(truth.labels) if lab == label]]
        matched = np.zeros(len(gt), dtype=bool)
        before = len(y_true)
        for i in order:
            if pred.labels[i] != label:
                continue
            hit = False
            if len(gt):
                ious = corner_box_iou(pred.boxes[i], gt)
                candidates = ~matched & (ious > min_iou)
                if candidates.any():
                    matched[np.argmax(np.where(candidates, ious, -np.inf))] = hit = True
            y_true.append(int(hit))
            y_score.append(pred.scores[i])
        y_true += [1] * int((~matched).sum())
        y_score += [0.0] * int((~matched).sum())
        if len(y_true) == before:
            y_true.append(0)
            y_score.append(0.0)
    return y_true, y_score


def _sort_in_place(pred: LabelledBoxes) -> list[int]:
    """Reorder `pred` by descending score with Python's stable sort; returns range(n)."""
    order = sorted(range(len(pred.scores)), key=pred.scores.__getitem__, reverse=True)
    pred.labels = [pred.labels[i] for i in order]
    pred.scores = [pred.scores[i] for i in order]
    pred.boxes = pred.boxes[order] if len(order) else pred.boxes
    return list(range(len(order)))


def mean_average_precision(pairs: list[tuple[list[int], list[float]]]) -> float:
    """Mean over labels of scikit-learn's average precision of each (y_true, y_score)."""
    return float(np.mean([average_precision_score(t, s) for t, s in pairs])) if pairs else 0.0


# COCO bbox evaluation (pycocotools' COCOeval, iouType "bbox", one IoU threshold, area "all").

_AREA_ALL = (0.0, 1e5**2)
_RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)


@dataclass
class CocoAnnotations:
    """Flat annotation table; `boxes` are (x, y, w, h) as COCO reads them, `ids` COCO's ids."""

    image: np.ndarray
    category: np.ndarray
    boxes: np.ndarray
    area: np.ndarray
    ids: np.ndarray
    scores: np.ndarray | None = None


def coco_bbox_iou(dets: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """pycocotools' bbox IoU matrix (dets x gts) for non-crowd (x, y, w, h) boxes."""
    dx, dy, dw, dh = (dets[:, k : k + 1] for k in range(4))
    gx, gy, gw, gh = (gts[:, k] for k in range(4))
    w = np.fmin(dx + dw, gx + gw) - np.fmax(dx, gx)
    h = np.fmin(dy + dh, gy + gh) - np.fmax(dy, gy)
    inter = w * h
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / (dw * dh + gw * gh - inter)
    # C's `if (w <= 0) continue` leaves 0; NaN widths fall through to the division.
    return np.where((w <= 0) | (h <= 0), 0.0, iou)


def coco_bbox_ap(
    gt: CocoAnnotations,
    dt: CocoAnnotations,
    n_images: int,
    iou_threshold: float,
    max_dets: int = 100,
) -> float:
    """COCOeval's stats[0] for one IoU threshold: AP over categories of the ground truth.

    Quirks kept from pycocotools: annotation id 0 reads as "unmatched" (it is stored as the
    match marker), ties at the IoU threshold match, and an unmatched detection whose area is
    outside [0, 1e10] is ignored.
    """
    categories = np.unique(gt.category)
    precision = -np.ones((len(_RECALL_THRESHOLDS), len(categories)))
    gt_groups = _group(gt, n_images)
    dt_groups = _group(dt, n_images)
    for k, category in enumerate(categories):
        results = [
            _evaluate_image(
                gt,
                dt,
                gt_groups.get((i, category), []),
                dt_groups.get((i, category), []),
                iou_threshold,
                max_dets,
            )
            for i in range(n_images)
        ]
        results = [r for r in results if r is not None]
        if results:
            curve = _precision_curve(results)
            if curve is not None:
                precision[:, k] = curve
    valid = precision[precision > -1]
    return float(np.mean(valid)) if len(valid) else -1.0


def _group(ann: CocoAnnotations, n_images: int) -> dict[tuple[int, object], list[int]]:
    groups: dict[tuple[int, object], list[int]] = {}
    for row, (image, category) in enumerate(
        zip(ann.image.tolist(), ann.category.tolist(), strict=True)
    ):
        groups.setdefault((image, category), []).append(row)
    return groups


def _evaluate_image(gt, dt, gt_rows, dt_rows, iou_threshold, max_dets):
    if not gt_rows and not dt_rows:
        return None
    dt_rows = np.asarray(dt_rows, dtype=np.int64)
    dt_rows = dt_rows[np.argsort(-dt.scores[dt_rows], kind="mergesort")][:max_dets]
    gt_rows = np.asarray(gt_rows, dtype=np.int64)
    low, high = _AREA_ALL
    gt_area = gt.area[gt_rows]
    gt_ignore = ((gt_area < low) | (gt_area > high)).astype(int)
    gt_order = np.argsort(gt_ignore, kind="mergesort")
    gt_rows, gt_ignore = gt_rows[gt_order], gt_ignore[gt_order]

    dt_match = np.zeros(len(dt_rows))
    dt_ignore = np.zeros(len(dt_rows), dtype=bool)
    if len(dt_rows) and len(gt_rows):
        ious = coco_bbox_iou(dt.boxes[dt_rows], gt.boxes[gt_rows]).tolist()
        gt_match = [0] * len(gt_rows)
        gt_ids, dt_ids = gt.ids[gt_rows].tolist(), dt.ids[dt_rows].tolist()
        ignore = gt_ignore.tolist()
        for d, row in enumerate(ious):
            best, m = min(iou_threshold, 1 - 1e-10), -1
            for g, value in enumerate(row):
                if gt_match[g] > 0:
                    continue
                if m > -1 and ignore[m] == 0 and ignore[g] == 1:
                    break
                if value < best:
                    continue
                best, m = value, g
            if m == -1:
                continue
            dt_ignore[d] = bool(ignore[m])
            dt_match[d] = gt_ids[m]
            gt_match[m] = dt_ids[d]
    dt_area = dt.area[dt_rows]
    dt_ignore |= (dt_match == 0) & ((dt_area < low) | (dt_area > high))
    return dt.scores[dt_rows], dt_match, dt_ignore, gt_ignore


def _precision_curve(results) -> np.ndarray | None:
    """Interpolated precision at the 101 recall thresholds, or None without countable truths."""
    scores = np.concatenate([r[0] for r in results])
    order = np.argsort(-scores, kind="mergesort")
    matches = np.concatenate([r[1] for r in results])[order]
    ignored = np.concatenate([r[2] for r in results])[order]
    n_truths = int(np.count_nonzero(np.concatenate([r[3] for r in results]) == 0))
    if n_truths == 0:
        return None
    tp = np.cumsum((matches != 0) & ~ignored).astype(float)
    fp = np.cumsum((matches == 0) & ~ignored).astype(float)
    recall = tp / n_truths
    prec = tp / (fp + tp + np.spacing(1))
    prec = np.maximum.accumulate(prec[::-1])[::-1]
    at = np.searchsorted(recall, _RECALL_THRESHOLDS, side="left")
    curve = np.zeros(len(_RECALL_THRESHOLDS))
    reachable = at < len(prec)
    curve[reachable] = prec[at[reachable]]
    return curve
