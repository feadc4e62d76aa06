"""3-D box IoU and the Lyft (nuScenes-style) average precision, per sample.

Boxes are (center_x, center_y, center_z, width, length, height, yaw), upright: the IoU is the
ground-footprint (rotated rectangle) intersection area times the vertical overlap, over the
union of volumes. The footprint corners follow the Lyft devkit's formulas exactly; their
intersection is computed here by convex polygon clipping (the devkit uses shapely, whose areas
agree to rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Boxes:
    """n boxes: params (n, 7) as above, plus their class names and scores (n,)."""

    params: np.ndarray
    names: np.ndarray
    scores: np.ndarray

    def subset(self, keep: np.ndarray) -> Boxes:
        return Boxes(self.params[keep], self.names[keep], self.scores[keep])


def footprints(params: np.ndarray) -> np.ndarray:
    """(n, 4, 2) footprint corners, in the devkit's corner order and arithmetic.

    The devkit takes cos/sin from a quaternion's rotation matrix; w*w - z*z and 2*w*z are that
    matrix's entries for a yaw about z (equal to pyquaternion's up to one rounding step).
    """
    cx, cy, _, width, length, _, yaw = params.T
    w, z = np.cos(yaw / 2.0), np.sin(yaw / 2.0)
    cos, sin = w * w - z * z, 2 * w * z
    half_l, half_w = length / 2, width / 2
    xs = [
        cx + half_l * cos + half_w * sin,
        cx + half_l * cos - half_w * sin,
        cx - half_l * cos - half_w * sin,
        cx - half_l * cos + half_w * sin,
    ]
    ys = [
        cy + half_l * sin - half_w * cos,
        cy + half_l * sin + half_w * cos,
        cy - half_l * sin + half_w * cos,
        cy - half_l * sin - half_w * cos,
    ]
    return np.stack([np.stack(xs, axis=1), np.stack(ys, axis=1)], axis=2)


def box_problems(params: np.ndarray) -> np.ndarray:
    """Per box, the reason the devkit's Box3D would refuse it ("" when it is accepted)."""
    problems = np.full(len(params), "", dtype=object)
    with np.errstate(invalid="ignore", over="ignore"):
        corners = footprints(params)
        right_angles = np.ones(len(params), dtype=bool)
        for a, b, c in [(0, 1, 3), (1, 0, 2), (2, 1, 3), (3, 0, 2)]:
            ab, ac = corners[:, b] - corners[:, a], corners[:, c] - corners[:, a]
            dot = ab[:, 0] * ac[:, 0] + ab[:, 1] * ac[:, 1]
            right_angles &= np.isclose(dot, 0)
    problems[~right_angles] = "its footprint is not a finite rectangle"
    problems[~(params[:, 3:6] > 0).all(axis=1)] = "sizes must be positive"
    problems[~np.isfinite(params[:, 6])] = "yaw must be finite"
    problems[np.isnan(params[:, 3:6]).any(axis=1)] = "size is NaN"
    problems[np.isnan(params[:, 0:3]).any(axis=1)] = "center is NaN"
    return problems


def iou_matrix(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """IoU of every predicted box (rows) with every true box (columns), clipped to [0, 1]."""
    pred_lo = predicted[:, 2] - predicted[:, 5] / 2
    pred_hi = predicted[:, 2] + predicted[:, 5] / 2
    true_lo = truth[:, 2] - truth[:, 5] / 2
    true_hi = truth[:, 2] + truth[:, 5] / 2
    # Python's max/min, as the devkit writes them (matters only for infinite z).
    lo = np.where(pred_lo[:, None] > true_lo[None, :], pred_lo[:, None], true_lo[None, :])
    hi = np.where(pred_hi[:, None] < true_hi[None, :], pred_hi[:, None], true_hi[None, :])
    overlap_z = np.where(hi - lo > 0, hi - lo, 0.0)

    area = np.zeros(overlap_z.shape)
    # Footprints further apart than their half-diagonals cannot meet: skip their clipping.
    reach = np.hypot(predicted[:, 3], predicted[:, 4])[:, None] + np.hypot(truth[:, 3], truth[:, 4])
    gap = np.hypot(
        predicted[:, 0][:, None] - truth[:, 0][None, :],
        predicted[:, 1][:, None] - truth[:, 1][None, :],
    )
    rows, cols = np.nonzero((overlap_z > 0) & ~(gap > reach / 2 * 1.001 + 1e-9))
    if len(rows):
        area[rows, cols] = convex_intersection_area(
            footprints(predicted)[rows], footprints(truth)[cols]
        )
    inter = overlap_z * area
    volume_pred = predicted[:, 3] * predicted[:, 4] * predicted[:, 5]
    volume_true = truth[:, 3] * truth[:, 4] * truth[:, 5]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip(inter / (volume_pred[:, None] + volume_true[None, :] - inter), 0, 1)


def convex_intersection_area(subject: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """Area of the intersection of pairs of convex quadrilaterals, (k, 4, 2) each.

    Sutherland-Hodgman, vectorised over the pairs: each polygon is a fixed-size vertex array
    plus a count, and each clipping step keeps the vertices on the inner side of one edge.
    """
    k = len(subject)
    points, counts = subject.copy(), np.full(k, 4)
    orientation = np.sign(_signed_area(clip, np.full(k, 4)))[:, None]
    for edge in range(4):
        start, end = clip[:, edge], clip[:, (edge + 1) % 4]
        points, counts = _clip_half_plane(points, counts, start, end, orientation)
    return np.abs(_signed_area(points, counts))


def _clip_half_plane(points, counts, start, end, orientation):
    slots = points.shape[1]
    index = np.arange(slots)[None, :]
    valid = index < counts[:, None]
    nxt = np.where(index + 1 < counts[:, None], index + 1, 0)
    following = np.take_along_axis(points, nxt[:, :, None], axis=1)
    direction = (end - start)[:, None, :]

    def side(p):
        rel = p - start[:, None, :]
        return orientation * (direction[..., 0] * rel[..., 1] - direction[..., 1] * rel[..., 0])

    s_here, s_next = side(points), side(following)
    inside_here, inside_next = s_here >= 0, s_next >= 0
    with np.errstate(invalid="ignore", divide="ignore"):  # t is only used where edges cross
        t = s_here / (s_here - s_next)
        crossing = points + t[..., None] * (following - points)
    # Each edge emits its crossing point (if it crosses) then its end vertex (if inside).
    emitted = np.stack([crossing, following], axis=2).reshape(len(points), 2 * slots, 2)
    keep = np.stack([valid & (inside_here != inside_next), valid & inside_next], axis=2)
    keep = keep.reshape(len(points), 2 * slots)
    order = np.argsort(~keep, axis=1, kind="stable")
    new_counts = keep.sum(axis=1)
    width = max(int(new_counts.max(initial=0)), 1)
    return np.take_along_axis(emitted, order[:, :width, None], axis=1), new_counts


def _signed_area(points: np.ndarray, counts: np.ndarray) -> np.ndarray:
    index = np.arange(points.shape[1])[None, :]
    valid = index < counts[:, None]
    nxt = np.where(index + 1 < counts[:, None], index + 1, 0)
    following = np.take_along_axis(points, nxt[:, :, None], axis=1)
    cross = points[..., 0] * following[..., 1] - following[..., 0] * points[..., 1]
    return np.where(valid, cross, 0.0).sum(axis=1) / 2


def class_average_precisions(
    ious: np.ndarray, scores: list[float], n_truths: int, thresholds: np.ndarray
) -> np.ndarray:
    """The devkit's AP of one class in one sample, for each IoU threshold.

    Predictions go by descending score (Python's stable sort); each is a TP when its best-IoU
    truth box exceeds the threshold and was not taken yet, otherwise an FP (no fallback to the
    next-best box).
    """
    order = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)
    ious = ious[order]
    best = np.max(ious, axis=1)
    best_truth = np.argmax(ious, axis=1)
    aps = np.zeros(len(thresholds))
    for t, threshold in enumerate(thresholds):
        tp = np.zeros(len(order))
        candidates = np.flatnonzero(best > threshold)
        _, first = np.unique(best_truth[candidates], return_index=True)
        tp[candidates[first]] = 1.0
        fp = 1.0 - tp
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        recalls = tp / float(n_truths)
        precisions = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        aps[t] = _envelope_ap(recalls, precisions)
    return aps


def _envelope_ap(recalls: np.ndarray, precisions: np.ndarray) -> float:
    recalls = np.concatenate(([0.0], recalls, [1.0]))
    precisions = np.concatenate(([0.0], precisions, [0.0]))
    precisions = np.maximum.accumulate(precisions[::-1])[::-1]
    steps = np.where(recalls[1:] != recalls[:-1])[0]
    return np.sum((recalls[steps + 1] - recalls[steps]) * precisions[steps + 1])
