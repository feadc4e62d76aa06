"""The contract every per-competition grading spec fulfils."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from services.grader.metrics import Score


class InvalidSubmission(Exception):
    """The submission cannot be graded.

    The message is shown to agents, so it may quote the submission but never the answers.
    """


AnswersFormat = Literal["csv", "jsonl"]


@dataclass(frozen=True)
class CompetitionSpec:
    """How one competition is graded.

    `grade` takes the submission as read by `read_submission_csv` and the answers as read by
    `read_answers`, and returns the raw (unrounded) metric value, or raises InvalidSubmission.
    """

    id: str
    grade: Callable[[pd.DataFrame, Any], Score]
    # The metric's direction, declared rather than inferred: MLE-bench infers it from the
    # leaderboard's first and last rows, which a plain clone holds only as Git LFS pointers.
    # Imports check it against the leaderboard when there is one.
    lower_is_better: bool
    answers_format: AnswersFormat = "csv"
    # Bump when a change to this spec could change any score; reports carry it as provenance.
    version: int = 1
    # The grading core rounds with round() on the score's own type, as MLE-bench's Grader
    # does, and Python floats and numpy float64 round differently (round(0.003125, 5) is
    # 0.00313, round(np.float64(0.003125), 5) is 0.00312). Set where MLE-bench's grader ends
    # with a numpy float64 under its pinned libraries (scikit-learn 1.5.2's metrics, np.mean):
    # the score is then handed to the core as float64 whatever type `grade` returns.
    float64_score: bool = False
    # Text columns that `grade` reads only through `checks.align_on_ids`, which pairs them as
    # Arrow strings: the reader may hand them over as such (see arrow_csv.object_text).
    arrow_text_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.float64_score and not isinstance(self.grade, Float64Score):
            object.__setattr__(self, "grade", Float64Score(self.grade))


@dataclass(frozen=True)
class Float64Score:
    """A grading function whose score is returned as numpy float64 (picklable)."""

    grade: Callable[[pd.DataFrame, Any], Score]

    def __call__(self, submission: pd.DataFrame, answers: Any) -> np.float64:
        return np.float64(self.grade(submission, answers))
