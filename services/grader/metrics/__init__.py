"""Metric families: pure functions over arrays and frames, with no knowledge of competitions."""

from __future__ import annotations

import numpy as np

# A metric's raw value: a Python float, or numpy's float64 where the reference's is one (the
# two round differently). float64 subclasses float at run time; numpy 1.26's stubs omit it.
Score = float | np.float64
