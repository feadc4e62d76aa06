"""Run-length encoded masks and the overlap metrics computed on them.

An RLE string is "start length start length ...", 1-based starts, over a flattened image.
MLE-bench's decoder (and so every function here) is lenient in one way and strict in others:
runs reaching past the image are silently cut at its end, while unsorted starts, non-positive
numbers and overlapping runs are errors. Most metrics here work on the runs directly (as
half-open [start, end) intervals) so that huge images never have to be materialised.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import directed_hausdorff

_CAP = 2**61


class MalformedRLE(ValueError):
    """An RLE string that MLE-bench's decoder would refuse."""


def rle_runs(rle: str, n_pixels: int) -> tuple[np.ndarray, np.ndarray]:
    """The runs of `rle` as 0-based half-open [starts, ends), cut to the first `n_pixels`.

    Runs starting at or beyond the image end are dropped entirely (as MLE-bench ignores them).
    """
    if not isinstance(rle, str):
        raise MalformedRLE(f"expected an RLE string, got {type(rle).__name__} {rle!r}")
    tokens = rle.split()
    if not tokens:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if len(tokens) % 2:
        raise MalformedRLE(f"expected pairs of numbers, got {len(tokens)} numbers")
    try:
        values = [int(t) for t in tokens]
    except ValueError as exc:
        raise MalformedRLE(f"RLE values must be integers ({exc})") from None
    try:
        numbers = np.array(values, dtype=np.int64)
    except OverflowError:
        # Beyond any image, so only their sign and order matter; the cap keeps both.
        numbers = np.array([max(-_CAP, min(v, _CAP)) for v in values], dtype=np.int64)
    starts, lengths = numbers[0::2] - 1, numbers[1::2]
    if (np.diff(starts) < 0).any():
        raise MalformedRLE("run starts must be sorted in increasing order")
    if (starts < 0).any() or (lengths <= 0).any():
        raise MalformedRLE("run starts and lengths must be positive integers")
    ends = starts + lengths
    # A run overlaps an earlier one when it starts inside the furthest end so far; as in
    # MLE-bench's pixel-by-pixel check, only overlaps inside the image count.
    furthest_end = np.maximum.accumulate(ends)[:-1]
    if ((starts[1:] < furthest_end) & (starts[1:] < n_pixels)).any():
        raise MalformedRLE("runs must not overlap")
    inside = starts < n_pixels
    return starts[inside], np.minimum(ends[inside], n_pixels)


def decode_rle(rle: str, height: int, width: int) -> np.ndarray:
    """A (height, width) boolean mask; pixels are numbered down each column, then across."""
    starts, ends = rle_runs(rle, height * width)
    return runs_to_flat_mask(starts, ends, height * width).reshape(width, height).T


def runs_to_flat_mask(starts: np.ndarray, ends: np.ndarray, n_pixels: int) -> np.ndarray:
    """A flat boolean mask of `n_pixels` with the given disjoint runs set."""
    edges = np.zeros(n_pixels + 1, dtype=np.int8)
    np.add.at(edges, starts, 1)
    np.add.at(edges, ends, -1)
    return np.cumsum(edges[:-1], dtype=np.int8) > 0


def encode_rle(mask: np.ndarray) -> str:
    """The inverse of `decode_rle` for a 2-D mask ("" for an empty mask)."""
    flat = np.concatenate([[False], np.asarray(mask, dtype=bool).T.ravel(), [False]])
    changes = np.flatnonzero(flat[1:] != flat[:-1])
    starts, ends = changes[0::2], changes[1::2]
    return " ".join(f"{s + 1} {e - s}" for s, e in zip(starts, ends, strict=True))


def runs_length(starts: np.ndarray, ends: np.ndarray) -> int:
    return int((ends - starts).sum())


def runs_intersection(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> int:
    """Number of pixels covered by both run sets (each made of disjoint runs)."""
    positions = np.concatenate([a[0], a[1], b[0], b[1]])
    steps = np.concatenate(
        [np.ones(len(a[0])), -np.ones(len(a[1])), np.ones(len(b[0])), -np.ones(len(b[1]))]
    ).astype(np.int64)
    # Ends sort before starts at the same position, so touching runs never count as covered.
    order = np.lexsort((steps, positions))
    positions, coverage = positions[order], np.cumsum(steps[order])
    both = coverage[:-1] == 2
    return int((np.diff(positions)[both]).sum())


def dice(intersection: float, size_a: float, size_b: float, both_empty: float) -> float:
    """2|A∩B| / (|A| + |B|), or `both_empty` when both sets are empty."""
    total = size_a + size_b
    return both_empty if total == 0 else 2 * intersection / total


def fbeta_from_counts(tp: int, fp: int, fn: int, beta: float) -> float:
    """F-beta as scikit-learn computes it for binary labels (0.0 when nothing is positive)."""
    beta2 = beta**2
    denominator = beta2 * (tp + fn) + (tp + fp)
    return 0.0 if denominator == 0 else (1 + beta2) * tp / denominator


def normalised_hausdorff(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Symmetric Hausdorff distance between two boolean volumes, as a share of the diagonal.

    Coordinates are scaled by the volume shape into the unit cube, and the distance is divided
    by its diagonal. Conventions of the UW-Madison grader: NaN when both are empty, 0 when
    equal, 1 when exactly one is empty or the prediction is over ten times the truth's size.
    """
    n_pred, n_true = int(predicted.sum()), int(truth.sum())
    if n_pred == 0 and n_true == 0:
        return float("nan")
    if np.array_equal(predicted, truth):
        return 0.0
    if n_pred == 0 or n_true == 0 or n_pred > 10 * n_true:
        return 1.0
    scale = np.array(truth.shape)
    true_points = np.argwhere(truth) / scale
    pred_points = np.argwhere(predicted) / scale
    distance = max(
        directed_hausdorff(true_points, pred_points)[0],
        directed_hausdorff(pred_points, true_points)[0],
    )
    return distance / np.sqrt(truth.ndim)
