"""iNaturalist 2019: top-1 classification error of `predicted`, rows paired on `id`.

A prediction is an integer category id, or text whose first whitespace-separated token is one
(Kaggle's format allowed a ranked list); only that first token is scored.
"""

import numpy as np
import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission
from services.grader.competitions.checks import label_accuracy, labels_by_id


def _first_category(value: object) -> int:
    if isinstance(value, int):  # Python ints and bools, as MLE-bench accepts
        return int(value)
    if not isinstance(value, str):
        raise InvalidSubmission(
            f"Submission column 'predicted' must hold integer category ids (or text starting "
            f"with one), but holds {value!r}."
        )
    try:
        return int(value.split()[0])
    except (IndexError, ValueError) as exc:
        raise InvalidSubmission(
            f"Submission column 'predicted' has {value!r}, which does not start with an integer "
            "category id."
        ) from exc


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> float:
    y_true, y_pred = labels_by_id(submission, answers, "id", "predicted")
    predicted: np.ndarray | list[int]
    if pd.api.types.is_integer_dtype(y_pred.dtype) or pd.api.types.is_bool_dtype(y_pred.dtype):
        predicted = y_pred.astype(int)
    else:  # text needs Python's int() parsing, one value at a time
        predicted = [_first_category(v) for v in y_pred.tolist()]
    return 1 - label_accuracy(y_true.astype(int), predicted, "predicted")


SPEC = CompetitionSpec(id="inaturalist-2019-fgvc6", lower_is_better=True, grade=grade)
