"""Kuzushiji Recognition: F1 of predicted character centres against true character boxes
(higher is better). Answers: `image_id`, `labels` ("label x y width height ..." per page,
empty for a page without characters); predictions are "label x y ..." per page.
"""

from __future__ import annotations

from itertools import chain

import numpy as np
import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.competitions.checks import align_on_ids, require_columns, require_text
from services.grader.metrics.point_in_box import f1_from_counts, match_counts


def _fields(pages: pd.Series, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(page of each item, items as a (n, width) object array of strings) of non-empty pages
    holding space-separated items of `width` fields."""
    present = pages.dropna().astype(str).str.split(" ")
    counts = present.str.len().to_numpy() // width
    tokens = np.array(list(chain.from_iterable(present)), dtype=object)
    return np.repeat(present.index.to_numpy(), counts), tokens.reshape(-1, width)


def _predicted_points(labels: pd.Series) -> pd.DataFrame:
    require_text(labels.to_frame(), "labels", allow_missing=True)
    present = labels.dropna().astype(str)
    malformed = present[present.str.split(" ").str.len() % 3 != 0]
    if len(malformed):
        raise InvalidSubmission(
            f"Submission has {len(malformed)} malformed 'labels' value(s): each must be "
            f"space-separated 'label x y' triples, e.g. not {malformed.iloc[0]!r}."
        )
    page, fields = _fields(labels, 3)
    try:
        x, y = fields[:, 1].astype(float), fields[:, 2].astype(float)
    except ValueError as exc:
        raise InvalidSubmission(f"Submission 'labels' has a non-numeric x or y: {exc}.") from exc
    return pd.DataFrame({"page": page, "label": fields[:, 0], "x": x, "y": y})


def _true_boxes(labels: pd.Series) -> pd.DataFrame:
    page, fields = _fields(labels, 5)
    xmin, ymin = fields[:, 1].astype(float), fields[:, 2].astype(float)
    return pd.DataFrame(
        {
            "page": page,
            "label": fields[:, 0],
            "xmin": xmin,
            "xmax": xmin + fields[:, 3].astype(float),
            "ymin": ymin,
            "ymax": ymin + fields[:, 4].astype(float),
        }
    )


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    require_columns(submission, ["image_id", "labels"])
    sub, ans = align_on_ids(submission, answers, "image_id")
    points = _predicted_points(sub["labels"])
    tp, fp, fn = match_counts(_true_boxes(ans["labels"]), points)
    return f1_from_counts(tp, fp, fn)


SPEC = CompetitionSpec(id="kuzushiji-recognition", lower_is_better=False, grade=grade)
