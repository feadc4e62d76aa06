"""Multi-modal Gesture Recognition: total Levenshtein distance between predicted and true
gesture sequences over the total number of true gestures (lower is better).
Answers: `Id`, `Sequence` (space-separated gesture numbers)."""

from __future__ import annotations

import pandas as pd

from services.grader.competitions.base import CompetitionSpec, InvalidSubmission, Score
from services.grader.competitions.checks import align_on_ids, require_columns
from services.grader.metrics.edit_distance import token_error_rate


def _gesture_lists(sequences: pd.Series) -> list[list[int]]:
    # Python's int() decides what a gesture number is, as in MLE-bench; sequences are short.
    return [[int(token) for token in text.split()] for text in sequences.astype(str)]


def grade(submission: pd.DataFrame, answers: pd.DataFrame) -> Score:
    require_columns(submission, ["Id", "Sequence"])
    sub, ans = align_on_ids(submission, answers, "Id")
    try:
        predicted = _gesture_lists(sub["Sequence"])
    except ValueError as exc:
        raise InvalidSubmission(
            "Submission column 'Sequence' must hold gesture numbers (integers) separated by "
            f"spaces; an empty cell is not allowed. {exc}."
        ) from exc
    return token_error_rate(_gesture_lists(ans["Sequence"]), predicted)


SPEC = CompetitionSpec(id="multi-modal-gesture-recognition", lower_is_better=True, grade=grade)
