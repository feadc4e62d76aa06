"""What the metrics' fast paths share: recognising scikit-learn's binary labels."""

from __future__ import annotations

import numpy as np


def positive_class(y_true: np.ndarray) -> np.ndarray | None:
    """For a 1-D vector of booleans or integers with exactly two distinct values, the mask of
    the larger one (scikit-learn's positive class once it has sorted the labels); None for any
    other input (one class, three, floats, text), which the fast paths leave to scikit-learn.
    """
    if y_true.ndim != 1 or not len(y_true) or y_true.dtype.kind not in "bi":
        return None
    low, high = y_true.min(), y_true.max()
    if low == high:
        return None
    positive = y_true == high
    if not np.all(positive | (y_true == low)):
        return None
    return positive
