"""UW-Madison GI tract: 0.4 * mean Dice + 0.6 * (1 - mean normalised 3-D Hausdorff distance).

Answers: id ("case<N>_day<M>_slice_<K>"), class, predicted (RLE, empty when no organ),
image_height, image_width. Dice is per row (NaN, so skipped, where both masks are empty).
The Hausdorff term is per case-day volume: each slice is the union of all classes' masks, the
slices stacked in id order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.competitions.checks import (
    require_columns,
    require_same_length,
    rle_runs_per_row,
)
from services.grader.metrics.masks import (
    dice,
    normalised_hausdorff,
    rle_runs,
    runs_intersection,
    runs_length,
    runs_to_flat_mask,
)

_KEY = ["id", "class"]


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, ["id", "class", "predicted"])
    sub = _in_answer_order(submission, answers)
    heights = answers["image_height"].astype(int).tolist()
    widths = answers["image_width"].astype(int).tolist()
    sizes = [h * w for h, w in zip(heights, widths, strict=True)]
    predicted = rle_runs_per_row(sub["id"], sub["predicted"].fillna(""), sizes)
    truth = [rle_runs(r, n) for r, n in zip(answers["predicted"].fillna(""), sizes, strict=True)]

    dices = [
        dice(runs_intersection(p, t), runs_length(*p), runs_length(*t), both_empty=np.nan)
        for p, t in zip(predicted, truth, strict=True)
    ]
    shapes = list(zip(heights, widths, strict=True))
    distances = [
        normalised_hausdorff(_volume(predicted, rows, shapes), _volume(truth, rows, shapes))
        for rows in _rows_by_case_day(answers["id"])
    ]
    return float(0.4 * np.nanmean(dices) + 0.6 * (1 - np.nanmean(distances)))


def _in_answer_order(submission: pd.DataFrame, answers: pd.DataFrame) -> pd.DataFrame:
    """The submission's rows matched to the answers' rows on (id, class)."""
    require_same_length(submission, answers)
    sub_keys = pd.MultiIndex.from_frame(submission[_KEY])
    ans_keys = pd.MultiIndex.from_frame(answers[_KEY])
    repeated = sub_keys[sub_keys.duplicated()]
    unknown = sub_keys[~sub_keys.isin(ans_keys)]
    if len(repeated) or len(unknown):
        bad, what = (repeated, "repeat an") if len(repeated) else (unknown, "have an unexpected")
        raise InvalidSubmission(
            f"Submission rows must hold each expected (id, class) pair once; {len(bad)} row(s) "
            f"{what} (id, class), e.g. {list(bad[:3])}."
        )
    return submission.iloc[sub_keys.get_indexer(ans_keys)].reset_index(drop=True)


def _rows_by_case_day(ids: pd.Series) -> list[list[list[int]]]:
    """Per case-day (in id order), per slice (in id order), the row positions of that slice."""
    order = ids.reset_index(drop=True).sort_values(kind="stable")
    slices = order.groupby(order, sort=False).groups
    days: dict[str, list[list[int]]] = {}
    for slice_id, index in slices.items():
        days.setdefault(slice_id.split("_slice_")[0], []).append(list(index))
    return list(days.values())


def _volume(
    runs: Sequence[tuple[np.ndarray, np.ndarray]],
    rows_per_slice: Sequence[Sequence[int]],
    shapes: Sequence[tuple[int, int]],
) -> np.ndarray:
    """The case-day volume: per slice, the union of its rows' masks, stacked along axis 0."""
    slices = []
    for rows in rows_per_slice:
        height, width = shapes[rows[0]]
        union = np.zeros(height * width, dtype=bool)
        for row in rows:
            starts, ends = runs[row]
            union |= runs_to_flat_mask(starts, ends, height * width)
        slices.append(union.reshape(width, height).T)
    return np.stack(slices)


SPEC = CompetitionSpec(
    id="uw-madison-gi-tract-image-segmentation",
    lower_is_better=False,
    grade=grade,
    version=2,
    float64_score=True,
)
